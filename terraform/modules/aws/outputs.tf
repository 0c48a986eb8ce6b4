# Outputs of a Tempest environment. modules/aws and modules/azure have exactly these names.

output "dapr_api_url" {
  description = "Base URL of the Dapr HTTP API (what an app uses instead of http://localhost:3500)."
  value       = aws_apigatewayv2_api.http.api_endpoint
}

output "ingest_urls" {
  description = "Trace receivers: OTLP/HTTP, Zipkin v2 and Jaeger Thrift HTTP endpoints."
  value = {
    otlp_http = "${aws_apigatewayv2_api.http.api_endpoint}/v1/traces"
    zipkin    = "${aws_apigatewayv2_api.http.api_endpoint}/api/v2/spans"
    jaeger    = "${aws_apigatewayv2_api.http.api_endpoint}/api/traces"
  }
}

output "query_url" {
  description = "URL for Grafana's Tempo data source (Grafana appends /api/...)."
  value       = aws_apigatewayv2_api.http.api_endpoint
}

output "traces_bucket" {
  description = "Bucket (AWS) or container (Azure) holding the trace blocks."
  value       = aws_s3_bucket.traces.bucket
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
  description = "Function => name of the cloud function that runs it."
  value       = { for k, f in local.functions : k => aws_lambda_function.fn[k].function_name }
}
