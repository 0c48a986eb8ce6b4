# One API Gateway HTTP API in front of every HTTP function: the Dapr API, the trace receivers
# and the Tempo query API share its URL, as `tempest serve` shares one host.

resource "aws_apigatewayv2_api" "http" {
  name          = "${local.prefix}-api"
  protocol_type = "HTTP"
  description   = "Tempest ${local.prefix}: Dapr HTTP API, trace receivers, Tempo query API"
  tags          = local.tags
}

resource "aws_cloudwatch_log_group" "api" {
  #checkov:skip=CKV_AWS_158:CloudWatch encrypts log data at rest with its own keys; a customer managed KMS key costs $1/month idle.
  #checkov:skip=CKV_AWS_338:Logs of a demo/test environment are kept for var.log_retention_days (7 by default), not a year, to keep storage cost near zero.
  name              = "/aws/apigateway/${local.prefix}-api"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_apigatewayv2_integration" "fn" {
  for_each               = local.http_functions
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.fn[each.key].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "route" {
  #checkov:skip=CKV_AWS_309:Authorization is the functions' own: DAPR_API_TOKEN for the Dapr API (as daprd does), and tenants (X-Scope-OrgID, allowed_tenants) for traces, as Tempo does; Dapr SDKs and OTLP exporters cannot sign IAM requests.
  for_each           = local.routes
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.fn[each.value].id}"
  authorization_type = "NONE"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = local.throttle_rate
    throttling_burst_limit = local.throttle_burst
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api.arn
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      requestTime    = "$context.requestTime"
      httpMethod     = "$context.httpMethod"
      routeKey       = "$context.routeKey"
      path           = "$context.path"
      status         = "$context.status"
      responseLength = "$context.responseLength"
      latency        = "$context.responseLatency"
      integration    = "$context.integration.error"
    })
  }

  tags = local.tags
}

resource "aws_lambda_permission" "api" {
  for_each      = local.http_functions
  statement_id  = "AllowApiGateway"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn[each.key].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}
