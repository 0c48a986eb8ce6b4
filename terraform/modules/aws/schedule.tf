# compact runs on an EventBridge schedule (var.compaction_schedule, every 5 minutes by default).

resource "aws_cloudwatch_event_rule" "compact" {
  name                = "${local.prefix}-compact"
  description         = "Tempest ${local.prefix}: trace compaction and retention"
  schedule_expression = local.schedule
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "compact" {
  rule      = aws_cloudwatch_event_rule.compact.name
  target_id = "compact"
  arn       = aws_lambda_function.fn["compact"].arn
}

resource "aws_lambda_permission" "compact" {
  statement_id  = "AllowEventBridge"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.fn["compact"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.compact.arn
}
