# Outputs of a Tempest environment. modules/aws and modules/azure have exactly these names.

locals {
  base_url = "https://${azurerm_linux_function_app.app["main"].default_hostname}"
}

output "dapr_api_url" {
  description = "Base URL of the Dapr HTTP API (what an app uses instead of http://localhost:3500)."
  value       = local.base_url
}

output "ingest_urls" {
  description = "Trace receivers: OTLP/HTTP, Zipkin v2 and Jaeger Thrift HTTP endpoints."
  value = {
    otlp_http = "${local.base_url}/v1/traces"
    zipkin    = "${local.base_url}/api/v2/spans"
    jaeger    = "${local.base_url}/api/traces"
  }
}

output "query_url" {
  description = "URL for Grafana's Tempo data source (Grafana appends /api/...)."
  value       = local.base_url
}

output "traces_bucket" {
  description = "Bucket (AWS) or container (Azure) holding the trace blocks."
  value       = azurerm_storage_container.traces.name
}

output "traces_storage" {
  description = "TEMPEST_TRACES_STORAGE for these blocks (tempest blocks/compact --storage)."
  value       = local.traces_storage
}

output "dapr_components" {
  description = "Dapr Component manifests for this environment's resources: file name => YAML (for a resources folder of `tempest serve` or daprd)."
  value       = local.component_files
}

output "function_names" {
  description = "Function => name of the cloud function that runs it: <function app>/<Azure function>, comma-separated where one function serves several routes or (deliver-<app>) several subscriptions."
  value = merge(
    { for f, names in local.azure_functions : f => join(",", [for n in names : "${azurerm_linux_function_app.app["main"].name}/${n}"]) },
    { for app in distinct([for s in local.subscriptions : s.app]) : "deliver-${app}" => join(",", [
      for k, s in local.subscriptions : "${azurerm_linux_function_app.app[k].name}/deliver" if s.app == app
    ]) },
  )
}
