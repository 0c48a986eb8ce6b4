resource "azurerm_resource_group" "env" {
  name     = "${local.prefix}-rg"
  location = var.region
  tags     = local.tags
}

# ---- host storage: AzureWebJobsStorage, the function package, the pub/sub queues -------------

resource "azurerm_storage_account" "host" {
  #checkov:skip=CKV_AZURE_33:Queue service logging (classic Storage Analytics) bills per log write; the Functions host logs queue processing to Application Insights.
  #checkov:skip=CKV_AZURE_35:Default network access stays Allow: Consumption-plan functions have no fixed outbound addresses or VNet integration to allow-list.
  #checkov:skip=CKV_AZURE_59:Public network access is needed for the same reason (no private endpoints on the Consumption plan; they would also cost money idle).
  #checkov:skip=CKV_AZURE_206:LRS is enough for a disposable demo/test environment: the host account holds leases, the package and in-flight messages.
  #checkov:skip=CKV2_AZURE_1:Encrypted with Microsoft-managed keys (plus infrastructure encryption); a customer-managed key needs a Key Vault key and costs money idle.
  #checkov:skip=CKV2_AZURE_33:No private endpoint: they cost money idle and the Consumption plan cannot reach them.
  #checkov:skip=CKV2_AZURE_40:Shared keys stay enabled: Linux Consumption apps reach their host storage (AzureWebJobsStorage) with the key, and azurerm creates queues through the data plane with it. Tempest's own access (queues, package) uses the app's managed identity.
  name                              = local.host_account
  resource_group_name               = azurerm_resource_group.env.name
  location                          = azurerm_resource_group.env.location
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = "LRS"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  infrastructure_encryption_enabled = true
  local_user_enabled                = false
  shared_access_key_enabled         = true

  sas_policy {
    expiration_period = "01.00:00:00"
  }

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  tags = local.tags
}

resource "azurerm_storage_container" "deployments" {
  #checkov:skip=CKV2_AZURE_21:Classic Storage Analytics read logging bills per logged request; the account holds only the function package, read at cold starts.
  name                  = "deployments"
  storage_account_id    = azurerm_storage_account.host.id
  container_access_type = "private"
}

# Linux Consumption apps cannot be zip-deployed (no Kudu); they run the package from a URL.
# The blob name carries the package's hash, so a new package is a new URL and restarts the app.
resource "azurerm_storage_blob" "package" {
  name                   = "tempest-functions-${filemd5(var.package_path)}.zip"
  storage_account_name   = azurerm_storage_account.host.name
  storage_container_name = azurerm_storage_container.deployments.name
  type                   = "Block"
  source                 = var.package_path
  content_md5            = filemd5(var.package_path)
}

resource "azurerm_storage_queue" "subscription" {
  for_each             = local.queue_names
  name                 = each.value
  storage_account_name = azurerm_storage_account.host.name

  lifecycle {
    precondition {
      condition     = length(distinct(values(local.queue_names))) == length(local.queue_names)
      error_message = "Two app/topic pairs give the same queue name; rename one."
    }
  }
}

# ---- data storage: trace blocks and the state table ------------------------------------------

resource "azurerm_storage_account" "data" {
  #checkov:skip=CKV_AZURE_33:Queue service logging (classic Storage Analytics) bills per log write, and this account has no queues.
  #checkov:skip=CKV_AZURE_35:Default network access stays Allow: Consumption-plan functions have no fixed outbound addresses or VNet integration to allow-list.
  #checkov:skip=CKV_AZURE_59:Public network access is needed for the same reason (no private endpoints on the Consumption plan; they would also cost money idle).
  #checkov:skip=CKV_AZURE_206:LRS is enough for a disposable demo/test environment; trace blocks are re-creatable telemetry.
  #checkov:skip=CKV2_AZURE_1:Encrypted with Microsoft-managed keys (plus infrastructure encryption); a customer-managed key needs a Key Vault key and costs money idle.
  #checkov:skip=CKV2_AZURE_33:No private endpoint: they cost money idle and the Consumption plan cannot reach them.
  #checkov:skip=CKV2_AZURE_38:No blob soft delete: the compactor deletes merged and expired blocks all the time, and soft-deleted copies would be billed for the retention period.
  #checkov:skip=CKV2_AZURE_40:Shared keys stay enabled because azurerm manages tables only with the account key; the Function App itself uses its managed identity.
  name                              = local.data_account
  resource_group_name               = azurerm_resource_group.env.name
  location                          = azurerm_resource_group.env.location
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = "LRS"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  infrastructure_encryption_enabled = true
  local_user_enabled                = false
  shared_access_key_enabled         = true

  sas_policy {
    expiration_period = "01.00:00:00"
  }

  tags = local.tags
}

resource "azurerm_storage_container" "traces" {
  #checkov:skip=CKV2_AZURE_21:Classic Storage Analytics read logging would log every block read of every query, costing more than the blocks; access is by the app's identity only.
  name                  = local.traces_container
  storage_account_id    = azurerm_storage_account.data.id
  container_access_type = "private"
}

resource "azurerm_storage_management_policy" "data" {
  storage_account_id = azurerm_storage_account.data.id

  rule {
    name    = "expire-blocks"
    enabled = true
    filters {
      prefix_match = ["${local.traces_container}/blocks/"]
      blob_types   = ["blockBlob"]
    }
    actions {
      # The compactor applies the retention; this only catches what it missed.
      base_blob {
        delete_after_days_since_modification_greater_than = var.retention_days + 2
      }
    }
  }
}

resource "azurerm_storage_table" "state" {
  #checkov:skip=CKV2_AZURE_20:Classic Storage Analytics read logging would log every state read, costing more than the state; access is by the app's identity only.
  count                = var.components.state ? 1 : 0
  name                 = local.state_table
  storage_account_name = azurerm_storage_account.data.name
}
