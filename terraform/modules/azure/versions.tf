terraform {
  # strcontains() in the variable validations needs 1.5.
  required_version = ">= 1.5"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # 4.9 gave azurerm_storage_container its storage_account_id (created through Azure
      # Resource Manager, not the data plane).
      version = "~> 4.9"
    }
  }
}
