# The only file (with the module's source) that differs from aws-dev.

terraform {
  required_version = ">= 1.5"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.9"
    }
  }
}

# The subscription comes from ARM_SUBSCRIPTION_ID (or `az account set`); var.region is the
# location of the module's resource group.
provider "azurerm" {
  features {
    key_vault {
      # The vault has no purge protection, so destroy purges it and its secrets and the
      # environment can be re-created with the same names.
      purge_soft_delete_on_destroy    = true
      recover_soft_deleted_key_vaults = true
    }
    resource_group {
      prevent_deletion_if_contains_resources = false
    }
  }
}
