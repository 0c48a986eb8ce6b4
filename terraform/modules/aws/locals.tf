data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  prefix     = var.name_prefix
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  tags       = merge(var.tags, { "tempest-environment" = var.name_prefix })

  schedule        = coalesce(var.compaction_schedule, "rate(5 minutes)")
  retention_hours = "${var.retention_days * 24}h"

  # Timeouts (seconds). API Gateway HTTP APIs give up after 30 s, so the HTTP functions stop
  # just before; deliver stays under the queues' 30 s visibility timeout; compact gets the 5
  # minutes its default time budget (4 min) is sized for.
  http_timeout          = 29
  search_worker_timeout = 25
  deliver_timeout       = 25
  compact_timeout       = 300
  visibility_timeout    = 30
  max_receives          = 5

  # Gateway throttling: a cap on what a leaked URL can cost, far above a demo's load.
  throttle_rate  = 100
  throttle_burst = 200

  # ---- pub/sub layout (pubsub.aws.snssqs with entityPrefix = "<prefix>-") -------------------
  entity_prefix    = "${local.prefix}-"
  dead_letters     = "${local.prefix}-deadletters"
  subscribing_apps = var.components.pubsub ? { for id, app in var.apps : id => app if length(app.topics) > 0 } : {}
  subscriptions = {
    for s in flatten([
      for id, app in local.subscribing_apps : [
        for topic in distinct(app.topics) : { app = id, topic = topic }
      ]
    ]) : "${s.app}/${s.topic}" => merge(s, { queue = "${local.entity_prefix}${s.app}-${s.topic}" })
  }
  topics = toset([for s in local.subscriptions : s.topic])

  # ---- functions ----------------------------------------------------------------------------
  # key => catalog function (TEMPEST_FUNCTION) and timeout. deliver: one per subscribing app.
  functions = merge(
    {
      invoke          = { function = "invoke", timeout = local.http_timeout }
      metadata        = { function = "metadata", timeout = local.http_timeout }
      ingest          = { function = "ingest", timeout = local.http_timeout }
      query           = { function = "query", timeout = local.http_timeout }
      "search-worker" = { function = "search-worker", timeout = local.search_worker_timeout }
      compact         = { function = "compact", timeout = local.compact_timeout }
    },
    var.components.state ? { state = { function = "state", timeout = local.http_timeout } } : {},
    var.components.pubsub ? { publish = { function = "publish", timeout = local.http_timeout } } : {},
    var.components.secrets ? { secrets = { function = "secrets", timeout = local.http_timeout } } : {},
    { for id, app in local.subscribing_apps : "deliver-${id}" => { function = "deliver", timeout = local.deliver_timeout } },
  )
  function_name = { for k, f in local.functions : k => "${local.prefix}-${k}" }

  # The functions that serve the Dapr API and so check DAPR_API_TOKEN.
  dapr_functions   = ["invoke", "state", "publish", "secrets", "metadata"]
  traces_functions = ["ingest", "query", "search-worker", "compact"]
  tenant_functions = ["ingest", "query", "search-worker"]

  # HTTP API routes => function key. The most specific route wins, so /v1.0/{proxy+} (metadata,
  # healthz, shutdown and whatever else of Dapr's API) only gets what the others do not claim;
  # with a building block disabled, its paths reach metadata, which answers Dapr's "not found".
  routes = merge(
    {
      "ANY /v1.0/invoke/{proxy+}" = "invoke"
      "ANY /v1.0/{proxy+}"        = "metadata"
      "GET /v1.0/healthz"         = "metadata"
      "ANY /v1.0-alpha1/{proxy+}" = "metadata"
      "POST /v1/traces"           = "ingest"
      "POST /api/v2/spans"        = "ingest"
      "POST /api/traces"          = "ingest"
      "GET /api/{proxy+}"         = "query"
      "GET /ready"                = "query"
    },
    var.components.state ? {
      "ANY /v1.0/state/{proxy+}"         = "state"
      "POST /v1.0-alpha1/state/{proxy+}" = "state"
    } : {},
    var.components.pubsub ? {
      "POST /v1.0/publish/{proxy+}"        = "publish"
      "POST /v1.0-alpha1/publish/{proxy+}" = "publish"
    } : {},
    var.components.secrets ? {
      "GET /v1.0/secrets/{proxy+}" = "secrets"
    } : {},
  )
  http_functions = toset(distinct(values(local.routes)))

  # ---- Dapr components ----------------------------------------------------------------------
  component_files = merge(
    var.components.state ? {
      "statestore.yaml" = yamlencode({
        apiVersion = "dapr.io/v1alpha1"
        kind       = "Component"
        metadata   = { name = "statestore" }
        spec = {
          type    = "state.aws.dynamodb"
          version = "v1"
          metadata = [
            { name = "table", value = aws_dynamodb_table.state[0].name },
            { name = "region", value = var.region },
            { name = "ttlAttributeName", value = "ttl" },
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
          type    = "pubsub.aws.snssqs"
          version = "v1"
          metadata = [
            { name = "region", value = var.region },
            { name = "entityPrefix", value = local.entity_prefix },
            { name = "sqsDeadLettersQueueName", value = local.dead_letters },
            { name = "messageReceiveLimit", value = tostring(local.max_receives) },
            { name = "messageVisibilityTimeout", value = tostring(local.visibility_timeout) },
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
          type     = "secretstores.aws.secretmanager"
          version  = "v1"
          metadata = [{ name = "region", value = var.region }]
        }
      })
    } : {},
  )
  # Which component files each catalog function is given in TEMPEST_COMPONENTS.
  function_components = {
    state    = ["statestore.yaml"]
    publish  = ["pubsub.yaml"]
    deliver  = ["pubsub.yaml"]
    secrets  = ["secretstore.yaml"]
    metadata = keys(local.component_files)
  }

  # ---- environment --------------------------------------------------------------------------
  apps_setting = join(",", [for id, app in var.apps : "${id}=${app.url}"])
  # Everything but DAPR_API_TOKEN; kept apart so that this map (and for_each over it) is not
  # sensitive.
  function_env = {
    for k, f in local.functions : k => merge(
      {
        TEMPEST_FUNCTION       = f.function
        TEMPEST_SELF_TELEMETRY = "false"
      },
      contains(local.traces_functions, f.function) ? {
        TEMPEST_TRACES_STORAGE = local.traces_storage
      } : {},
      contains(["invoke", "deliver", "metadata"], f.function) && length(var.apps) > 0 ? {
        TEMPEST_APPS = local.apps_setting
      } : {},
      length(lookup(local.function_components, f.function, [])) > 0 ? {
        TEMPEST_COMPONENTS = join("\n---\n", [
          for file in local.function_components[f.function] : trimsuffix(local.component_files[file], "\n")
        ])
      } : {},
      contains(local.tenant_functions, f.function) && length(var.allowed_tenants) > 0 ? {
        TEMPEST_ALLOWED_TENANTS = join(",", var.allowed_tenants)
      } : {},
      f.function == "query" ? {
        TEMPEST_SEARCH_WORKER_FUNCTION = local.function_name["search-worker"]
      } : {},
      f.function == "compact" ? {
        TEMPEST_RETENTION = local.retention_hours
      } : {},
      f.function == "deliver" ? {
        TEMPEST_DELIVER_APP    = trimprefix(k, "deliver-")
        TEMPEST_DELIVER_PUBSUB = "pubsub"
      } : {},
    )
  }

  traces_bucket  = "${local.prefix}-traces-${local.account_id}"
  traces_storage = "s3://${local.traces_bucket}/blocks"
}
