# pubsub.aws.snssqs: an SNS topic per topic ("<prefix>-<topic>"), an SQS queue per subscribing
# app and topic ("<prefix>-<app>-<topic>") subscribed to it, one dead-letter queue, and an
# event source mapping from each queue to its app's deliver function. The names are the ones
# the component computes from entityPrefix, so `tempest serve` with the dapr_components output
# finds the same resources.

resource "aws_sqs_queue" "dead_letters" {
  count                     = var.components.pubsub ? 1 : 0
  name                      = local.dead_letters
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

resource "aws_sqs_queue" "subscription" {
  for_each                   = local.subscriptions
  name                       = each.value.queue
  visibility_timeout_seconds = local.visibility_timeout
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters[0].arn
    maxReceiveCount     = local.max_receives
  })
  tags = local.tags

  lifecycle {
    precondition {
      condition     = length(each.value.queue) <= 80
      error_message = "SQS queue name ${each.value.queue} is longer than 80 characters: shorten name_prefix, the app id or the topic."
    }
    precondition {
      condition     = length(distinct([for s in local.subscriptions : s.queue])) == length(local.subscriptions)
      error_message = "Two app/topic pairs give the same queue name (<prefix>-<app>-<topic>); rename one."
    }
  }
}

resource "aws_sns_topic" "topic" {
  for_each          = local.topics
  name              = "${local.entity_prefix}${each.key}"
  kms_master_key_id = "alias/aws/sns"
  tags              = local.tags
}

resource "aws_sqs_queue_policy" "subscription" {
  for_each  = local.subscriptions
  queue_url = aws_sqs_queue.subscription[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "FromTopic"
      Effect    = "Allow"
      Principal = { Service = "sns.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.subscription[each.key].arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_sns_topic.topic[each.value.topic].arn } }
    }]
  })
}

resource "aws_sns_topic_subscription" "subscription" {
  for_each  = local.subscriptions
  topic_arn = aws_sns_topic.topic[each.value.topic].arn
  protocol  = "sqs"
  endpoint  = aws_sqs_queue.subscription[each.key].arn
  # deliver unwraps the SNS envelope (it carries the topic and the message attributes).
  raw_message_delivery = false
  depends_on           = [aws_sqs_queue_policy.subscription]
}

resource "aws_lambda_event_source_mapping" "deliver" {
  for_each                = local.subscriptions
  event_source_arn        = aws_sqs_queue.subscription[each.key].arn
  function_name           = aws_lambda_function.fn["deliver-${each.value.app}"].arn
  batch_size              = 10
  function_response_types = ["ReportBatchItemFailures"]
  depends_on              = [aws_iam_role_policy.fn]
}
