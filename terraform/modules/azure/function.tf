# One Linux Consumption Function App ("main") runs every function but deliver
# (functions/azure: a custom handler with one folder per Azure function), and one more per
# subscription runs deliver on that subscription's queue. Azure gives the identity to the app,
# not to a function, so unlike the AWS module (one role per function) the main app's functions
# share the union of the permissions below; they are still scoped to single resources wherever
# Azure allows, and the deliver apps hold none (the queue trigger reads through the host
# storage connection).

resource "azurerm_log_analytics_workspace" "logs" {
  name                = "${local.prefix}-logs"
  location            = azurerm_resource_group.env.location
  resource_group_name = azurerm_resource_group.env.name
  sku                 = "PerGB2018"
  # Log Analytics keeps data at least 30 days (and the first 31 are free).
  retention_in_days = max(30, var.log_retention_days)
  tags              = local.tags
}

resource "azurerm_application_insights" "app" {
  name                = "${local.prefix}-insights"
  location            = azurerm_resource_group.env.location
  resource_group_name = azurerm_resource_group.env.name
  workspace_id        = azurerm_log_analytics_workspace.logs.id
  application_type    = "other"
  tags                = local.tags
}

resource "azurerm_service_plan" "plan" {
  #checkov:skip=CKV_AZURE_211:The Consumption plan (Y1) is the point: it bills per execution and costs nothing idle.
  #checkov:skip=CKV_AZURE_212:A Consumption plan scales from zero; a minimum instance count would cost money idle.
  #checkov:skip=CKV_AZURE_225:Zone redundancy needs an Elastic Premium or Flex plan, which costs money idle.
  name                = "${local.prefix}-plan"
  location            = azurerm_resource_group.env.location
  resource_group_name = azurerm_resource_group.env.name
  os_type             = "Linux"
  sku_name            = "Y1"
  tags                = local.tags
}

# No App Service authentication (Easy Auth): Entra ID sign-in in front of the Dapr API and the
# trace receivers is something Dapr SDKs and OTLP exporters cannot do. The handler checks
# DAPR_API_TOKEN and tenants (X-Scope-OrgID, allowed_tenants), as daprd and Tempo do.
resource "azurerm_linux_function_app" "app" {
  #checkov:skip=CKV_AZURE_221:Public network access is the service: apps, exporters and Grafana call these endpoints.
  for_each            = local.function_apps
  name                = each.value.name
  location            = azurerm_resource_group.env.location
  resource_group_name = azurerm_resource_group.env.name
  service_plan_id     = azurerm_service_plan.plan.id
  # The host's own storage (AzureWebJobsStorage, also the queue trigger's connection) uses the
  # account key: an identity-based host storage connection is not supported on Linux
  # Consumption (azure-functions-host issue 9397). What Tempest itself touches uses the identity.
  storage_account_name                           = azurerm_storage_account.host.name
  storage_account_access_key                     = azurerm_storage_account.host.primary_access_key
  functions_extension_version                    = "~4"
  https_only                                     = true
  public_network_access_enabled                  = true
  builtin_logging_enabled                        = false
  ftp_publish_basic_authentication_enabled       = false
  webdeploy_publish_basic_authentication_enabled = false

  identity {
    type = "SystemAssigned"
  }

  site_config {
    application_insights_connection_string = azurerm_application_insights.app.connection_string
    minimum_tls_version                    = "1.2"
    ftps_state                             = "Disabled"
    http2_enabled                          = true
    # A cap on what a leaked URL can cost, far above a demo's load.
    app_scale_limit = 10

    application_stack {
      use_custom_runtime = true
    }
  }

  app_settings = each.value.settings

  tags = local.tags
}

# ---- the app's identity ----------------------------------------------------------------------

# The package: read by the platform with the app's identity (WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID).
resource "azurerm_role_assignment" "package" {
  for_each             = azurerm_linux_function_app.app
  scope                = "${azurerm_storage_account.host.id}/blobServices/default/containers/${azurerm_storage_container.deployments.name}"
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = each.value.identity[0].principal_id
}

# Pub/sub queues: the publisher lists a topic's queues by name prefix, an account-level
# operation, so this role is on the host account.
resource "azurerm_role_assignment" "queues" {
  count                = var.components.pubsub ? 1 : 0
  scope                = azurerm_storage_account.host.id
  role_definition_name = "Storage Queue Data Contributor"
  principal_id         = azurerm_linux_function_app.app["main"].identity[0].principal_id
}

# Trace blocks: the traces container only.
resource "azurerm_role_assignment" "traces" {
  scope                = "${azurerm_storage_account.data.id}/blobServices/default/containers/${azurerm_storage_container.traces.name}"
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_linux_function_app.app["main"].identity[0].principal_id
}

# State: the state table only.
resource "azurerm_role_assignment" "state" {
  count                = var.components.state ? 1 : 0
  scope                = "${azurerm_storage_account.data.id}/tableServices/default/tables/${azurerm_storage_table.state[0].name}"
  role_definition_name = "Storage Table Data Contributor"
  principal_id         = azurerm_linux_function_app.app["main"].identity[0].principal_id
}

# Secrets: read the vault's secrets.
resource "azurerm_role_assignment" "secrets" {
  count                = var.components.secrets ? 1 : 0
  scope                = azurerm_key_vault.secrets[0].id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_linux_function_app.app["main"].identity[0].principal_id
}
