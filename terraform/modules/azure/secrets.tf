# secretstores.azure.keyvault: a vault with Azure RBAC, one secret per entry of var.secrets.

resource "azurerm_key_vault" "secrets" {
  #checkov:skip=CKV_AZURE_109:The vault must be reachable from the Consumption plan, which has no fixed outbound addresses to allow-list; access is by Entra ID and RBAC only.
  #checkov:skip=CKV_AZURE_110:Purge protection is off so that `terraform destroy` can purge the vault and an environment can be re-created under the same name; soft delete (7 days, Azure's minimum and mandatory) still protects against accidental deletion.
  #checkov:skip=CKV_AZURE_42:Recoverability in checkov's sense needs purge protection, which is off on purpose (see CKV_AZURE_110); soft delete is on.
  #checkov:skip=CKV_AZURE_189:Public network access is needed for the same reason as the missing firewall: no private endpoints on the Consumption plan.
  #checkov:skip=CKV2_AZURE_32:No private endpoint: they cost money idle and the Consumption plan cannot reach them.
  count                         = var.components.secrets ? 1 : 0
  name                          = local.vault_name
  location                      = azurerm_resource_group.env.location
  resource_group_name           = azurerm_resource_group.env.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  enable_rbac_authorization     = true
  purge_protection_enabled      = false
  soft_delete_retention_days    = 7
  public_network_access_enabled = true

  network_acls {
    default_action = "Allow"
    bypass         = "AzureServices"
  }

  tags = local.tags
}

# Whoever runs Terraform writes the secrets (the vault uses RBAC, not access policies).
resource "azurerm_role_assignment" "deployer_secrets" {
  count                = var.components.secrets ? 1 : 0
  scope                = azurerm_key_vault.secrets[0].id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

resource "azurerm_key_vault_secret" "secret" {
  #checkov:skip=CKV_AZURE_41:Values come from Terraform (var.secrets) and are replaced by the next apply; an expiry date would make the secret store fail on a date nobody watches.
  for_each     = var.components.secrets ? toset(nonsensitive(keys(var.secrets))) : toset([])
  name         = each.key
  value        = var.secrets[each.key]
  key_vault_id = azurerm_key_vault.secrets[0].id
  content_type = "text/plain"
  # RBAC assignments take a moment to reach Key Vault; a 403 here goes away on a second apply.
  depends_on = [azurerm_role_assignment.deployer_secrets]
}
