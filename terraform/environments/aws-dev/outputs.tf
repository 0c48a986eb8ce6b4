output "dapr_api_url" {
  description = "Base URL of the Dapr HTTP API."
  value       = module.tempest.dapr_api_url
}

output "ingest_urls" {
  description = "Trace receivers: OTLP/HTTP, Zipkin v2 and Jaeger Thrift HTTP endpoints."
  value       = module.tempest.ingest_urls
}

output "query_url" {
  description = "URL for Grafana's Tempo data source."
  value       = module.tempest.query_url
}

output "traces_bucket" {
  description = "Bucket or container holding the trace blocks."
  value       = module.tempest.traces_bucket
}

output "traces_storage" {
  description = "TEMPEST_TRACES_STORAGE for these blocks."
  value       = module.tempest.traces_storage
}

output "dapr_components" {
  description = "Dapr Component manifests: file name => YAML."
  value       = module.tempest.dapr_components
}

output "function_names" {
  description = "Function => cloud function name."
  value       = module.tempest.function_names
}
