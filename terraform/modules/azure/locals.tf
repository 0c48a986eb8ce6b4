data "azurerm_client_config" "current" {}

locals {
  prefix = var.name_prefix
  tags   = merge(var.tags, { "tempest-environment" = var.name_prefix })
  # Global names (storage accounts, the vault, the app's host name) get a suffix unique to the
  # subscription and prefix; the random provider is not used so the module needs only azurerm.
  suffix         = substr(md5("${data.azurerm_client_config.current.subscription_id}/${var.name_prefix}"), 0, 6)
  compact_prefix = replace(var.name_prefix, "-", "")

  # Host storage (AzureWebJobsStorage: the Functions host's own state, reached with the account
  # key; the package; the pub/sub queues, which the queue trigger reads through that connection)
  # and data storage (trace blocks, the state table) are separate accounts, so the identity's
  # data roles are scoped to one container and one table.
  host_account = "${substr(local.compact_prefix, 0, 16)}h${local.suffix}"
  data_account = "${substr(local.compact_prefix, 0, 16)}d${local.suffix}"
  vault_name   = "${substr(local.compact_prefix, 0, 15)}kv${local.suffix}"
  app_name     = "${local.prefix}-${local.suffix}"
  state_table  = "${local.compact_prefix}state"

  schedule        = coalesce(var.compaction_schedule, "0 */5 * * * *")
  retention_hours = "${var.retention_days * 24}h"

  traces_container = "traces"
  traces_storage   = "az://${local.traces_container}/blocks"

  # ---- pub/sub layout (pubsub.azure.storagequeues with entityPrefix = "<prefix>-") ----------
  # Queue names are the component's: "<entityPrefix><sha256(topic)[0:10]>-<app>", the app part
  # cleaned and given a hash of its own when it is not already lowercase letters, digits and
  # single hyphens that fit (queue names are at most 63 characters, "-poison" included).
  entity_prefix      = "${local.prefix}-"
  visibility_timeout = 30
  max_dequeue        = 5
  subscribing_apps   = var.components.pubsub ? { for id, app in var.apps : id => app if length(app.topics) > 0 } : {}
  subscriptions = {
    for s in flatten([
      for id, app in local.subscribing_apps : [
        for topic in distinct(app.topics) : { app = id, topic = topic }
      ]
    ]) : "${s.app}/${s.topic}" => merge(s, { head = "${local.entity_prefix}${substr(sha256(s.topic), 0, 10)}-" })
  }
  queue_parts = {
    for k, s in local.subscriptions : k => {
      head  = s.head
      app   = s.app
      room  = 63 - length(s.head) - 7
      plain = can(regex("^[a-z0-9]+(-[a-z0-9]+)*$", s.app))
      cut   = replace(substr(replace(replace(lower(s.app), "/[^a-z0-9]+/", "-"), "/^-+/", ""), 0, 63 - length(s.head) - 14), "/-+$/", "")
      hash  = substr(sha256(s.app), 0, 6)
    }
  }
  queue_names = {
    for k, q in local.queue_parts : k => q.plain && length(q.app) <= q.room ? "${q.head}${q.app}" : (q.cut == "" ? "${q.head}${q.hash}" : "${q.head}${q.cut}-${q.hash}")
  }
  # ---- Dapr components ----------------------------------------------------------------------
  component_files = merge(
    var.components.state ? {
      "statestore.yaml" = yamlencode({
        apiVersion = "dapr.io/v1alpha1"
        kind       = "Component"
        metadata   = { name = "statestore" }
        spec = {
          type    = "state.azure.tablestorage"
          version = "v1"
          metadata = [
            { name = "accountName", value = local.data_account },
            { name = "tableName", value = local.state_table },
            # Terraform creates the table; the app's identity may only use it.
            { name = "skipCreateTable", value = "true" },
          ]
        }
      })
    } : {},
    var.components.pubsub ? {
      "pubsub.yaml" = yamlencode({
        apiVersion = "dapr.io/v1alpha1"
        kind       = "Component"
        metadata   = { name = "pubsub" }
        spec = {
          type    = "pubsub.azure.storagequeues"
          version = "v1"
          metadata = [
            { name = "accountName", value = local.host_account },
            { name = "entityPrefix", value = local.entity_prefix },
            { name = "visibilityTimeout", value = tostring(local.visibility_timeout) },
            { name = "maxDequeueCount", value = tostring(local.max_dequeue) },
          ]
        }
      })
    } : {},
    var.components.secrets ? {
      "secretstore.yaml" = yamlencode({
        apiVersion = "dapr.io/v1alpha1"
        kind       = "Component"
        metadata   = { name = "secretstore" }
        spec = {
          type     = "secretstores.azure.keyvault"
          version  = "v1"
          metadata = [{ name = "vaultName", value = local.vault_name }]
        }
      })
    } : {},
  )

  # ---- the apps' functions (functions/azure/src/app.rs) ------------------------------------
  # Every Azure function in the package.
  package_functions = [
    "dapr-invoke", "dapr-state", "dapr-publish", "dapr-secrets", "dapr-metadata", "dapr-alpha",
    "ingest-otlp", "ingest-zipkin", "ingest-jaeger", "query", "query-ready", "search-worker",
    "compact", "deliver",
  ]
  # Catalog function => the main app's Azure functions that run it.
  azure_functions = merge(
    {
      invoke          = ["dapr-invoke"]
      metadata        = ["dapr-metadata"]
      ingest          = ["ingest-otlp", "ingest-zipkin", "ingest-jaeger"]
      query           = ["query", "query-ready"]
      "search-worker" = ["search-worker"]
      compact         = ["compact"]
    },
    var.components.state ? { state = ["dapr-state"] } : {},
    # dapr-alpha serves the v1.0-alpha1 API (bulk publish, state query).
    var.components.pubsub ? { publish = ["dapr-publish", "dapr-alpha"] } : {},
    var.components.secrets ? { secrets = ["dapr-secrets"] } : {},
  )

  # ---- app settings (the AWS module's environment variables) --------------------------------
  # What every app running the package needs.
  package_settings = {
    TEMPEST_SELF_TELEMETRY = "false"
    # Linux Consumption runs the package from a URL only; the app's identity reads it.
    WEBSITE_RUN_FROM_PACKAGE                     = azurerm_storage_blob.package.url
    WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID = "SystemAssigned"
  }
  main_settings = merge(
    local.package_settings,
    {
      TEMPEST_TRACES_STORAGE      = local.traces_storage
      AZURE_STORAGE_ACCOUNT_NAME  = local.data_account
      TEMPEST_RETENTION           = local.retention_hours
      TEMPEST_COMPACTION_SCHEDULE = local.schedule
      # Search jobs run inside the query function: the app's search-worker route is anonymous
      # (as every HTTP route of the package), so it is switched off rather than exposed.
      "AzureWebJobs.search-worker.Disabled" = "true"
      # Deliveries run in the deliver apps below; the binding still needs a queue name.
      "AzureWebJobs.deliver.Disabled" = "true"
      TEMPEST_DELIVER_QUEUE           = "${local.prefix}-no-deliveries"
    },
    length(var.apps) > 0 ? {
      TEMPEST_APPS = join(",", [for id, app in var.apps : "${id}=${app.url}"])
    } : {},
    length(local.component_files) > 0 ? {
      TEMPEST_COMPONENTS = join("\n---\n", [for file, doc in local.component_files : trimsuffix(doc, "\n")])
    } : {},
    length(var.allowed_tenants) > 0 ? {
      TEMPEST_ALLOWED_TENANTS = join(",", var.allowed_tenants)
    } : {},
    var.api_token != null ? { DAPR_API_TOKEN = var.api_token } : {},
  )
  # The package's deliver function is triggered by one queue (TEMPEST_DELIVER_QUEUE), so each
  # subscription gets an app of its own that runs only deliver, on its queue, for its app: a
  # Consumption app costs nothing idle, and none of them holds a data role.
  deliver_settings = {
    for k, s in local.subscriptions : k => merge(
      local.package_settings,
      { for f in local.package_functions : "AzureWebJobs.${f}.Disabled" => "true" if f != "deliver" },
      {
        TEMPEST_DELIVER_QUEUE  = local.queue_names[k]
        TEMPEST_DELIVER_APP    = s.app
        TEMPEST_DELIVER_PUBSUB = "pubsub"
        TEMPEST_APPS           = "${s.app}=${var.apps[s.app].url}"
        TEMPEST_COMPONENTS     = trimsuffix(local.component_files["pubsub.yaml"], "\n")
      },
    )
  }
  # App key => name and settings: "main" serves everything but deliver.
  function_apps = merge(
    { main = { name = local.app_name, settings = local.main_settings } },
    { for k, settings in local.deliver_settings : k => {
      name     = "${local.app_name}-${substr(sha256(k), 0, 8)}"
      settings = settings
    } },
  )
}
