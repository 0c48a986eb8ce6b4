# One Lambda per function, all from the same package; TEMPEST_FUNCTION picks the function.
# Each function has its own role with only what it uses, and its own log group.

data "aws_region" "current" {}

locals {
  # Every statement has the same four attributes so the lists below have one element type.
  policy_statements = {
    state = var.components.state ? [{
      Sid      = "StateTable"
      Effect   = "Allow"
      Action   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:TransactWriteItems", "dynamodb:BatchGetItem", "dynamodb:Query"]
      Resource = [aws_dynamodb_table.state[0].arn]
    }] : []
    publish = [{
      Sid      = "PublishTopics"
      Effect   = "Allow"
      Action   = ["sns:Publish", "sns:CreateTopic"]
      Resource = ["arn:${local.partition}:sns:${data.aws_region.current.name}:${local.account_id}:${local.entity_prefix}*"]
    }]
    secrets = concat(
      length(aws_secretsmanager_secret.secret) > 0 ? [{
        Sid      = "ReadSecrets"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        Resource = [for s in aws_secretsmanager_secret.secret : s.arn]
      }] : [],
      [{
        # Bulk reads list the secrets; ListSecrets has no resource-level permissions.
        Sid      = "ListSecrets"
        Effect   = "Allow"
        Action   = ["secretsmanager:ListSecrets"]
        Resource = ["*"]
      }],
    )
    ingest = [
      {
        Sid      = "WriteBlocks"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject"]
        Resource = ["${aws_s3_bucket.traces.arn}/*"]
      },
      {
        Sid      = "ListBlocks"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.traces.arn]
      },
    ]
    query = [
      {
        Sid      = "ReadBlocks"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${aws_s3_bucket.traces.arn}/*"]
      },
      {
        Sid      = "ListBlocks"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.traces.arn]
      },
      {
        Sid      = "RunSearchJobs"
        Effect   = "Allow"
        Action   = ["lambda:InvokeFunction"]
        Resource = [aws_lambda_function.fn["search-worker"].arn]
      },
    ]
    "search-worker" = [
      {
        Sid      = "ReadBlocks"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${aws_s3_bucket.traces.arn}/*"]
      },
      {
        Sid      = "ListBlocks"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.traces.arn]
      },
    ]
    compact = [
      {
        Sid      = "CompactBlocks"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        Resource = ["${aws_s3_bucket.traces.arn}/*"]
      },
      {
        Sid      = "ListBlocks"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [aws_s3_bucket.traces.arn]
      },
    ]
  }

  function_policies = {
    for k, f in local.functions : k => concat(
      [{
        Sid      = "OwnLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = ["${aws_cloudwatch_log_group.fn[k].arn}:*"]
      }],
      f.function == "deliver" ? [{
        Sid      = "ConsumeQueues"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]
        Resource = [for sk, s in local.subscriptions : aws_sqs_queue.subscription[sk].arn if "deliver-${s.app}" == k]
      }] : [],
      try(local.policy_statements[f.function], []),
    )
  }
}

resource "aws_cloudwatch_log_group" "fn" {
  #checkov:skip=CKV_AWS_158:CloudWatch encrypts log data at rest with its own keys; a customer managed KMS key costs $1/month idle.
  #checkov:skip=CKV_AWS_338:Logs of a demo/test environment are kept for var.log_retention_days (7 by default), not a year, to keep storage cost near zero.
  for_each          = local.functions
  name              = "/aws/lambda/${local.function_name[each.key]}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_iam_role" "fn" {
  for_each = local.functions
  name     = local.function_name[each.key]
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "fn" {
  for_each = local.functions
  name     = "tempest-${each.value.function}"
  role     = aws_iam_role.fn[each.key].id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.function_policies[each.key]
  })
}

resource "aws_lambda_function" "fn" {
  #checkov:skip=CKV_AWS_50:X-Ray tracing is not wanted: Tempest records its own spans (and X-Ray bills per trace).
  #checkov:skip=CKV_AWS_115:No reserved concurrency: it carves capacity out of the account's unreserved pool (new accounts have 10 in all, so applying could fail); the API stage's throttling caps load instead.
  #checkov:skip=CKV_AWS_116:No Lambda DLQ: HTTP functions are invoked synchronously, deliver is fed by SQS whose redrive policy dead-letters, and a missed compaction run is redone by the next one.
  #checkov:skip=CKV_AWS_117:Not in a VPC: the functions reach only public AWS endpoints (S3, DynamoDB, SNS, SQS, Secrets Manager) and the apps' URLs; a VPC would need NAT gateways, which cost money while idle.
  #checkov:skip=CKV_AWS_173:Environment variables hold configuration; Lambda encrypts them at rest with its AWS managed key. DAPR_API_TOKEN is the one credential, and a customer managed key costs $1/month idle.
  #checkov:skip=CKV_AWS_272:Code signing needs AWS Signer and a signing profile; the package is built and deployed by the same operator from this repository.
  for_each         = local.functions
  function_name    = local.function_name[each.key]
  role             = aws_iam_role.fn[each.key].arn
  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["x86_64"]
  memory_size      = var.function_memory_mb
  timeout          = each.value.timeout

  environment {
    variables = merge(
      local.function_env[each.key],
      var.api_token != null && contains(local.dapr_functions, each.value.function) ? { DAPR_API_TOKEN = var.api_token } : {},
    )
  }

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.fn]

  lifecycle {
    precondition {
      condition     = length(local.function_name[each.key]) <= 64
      error_message = "Lambda name ${local.function_name[each.key]} is longer than 64 characters: shorten name_prefix or the app id."
    }
    precondition {
      # Lambda's limit on all environment variables together (DAPR_API_TOKEN not counted).
      condition     = sum([for k, v in local.function_env[each.key] : length(k) + length(v)]) <= 4000
      error_message = "The environment of ${local.function_name[each.key]} exceeds Lambda's 4 KB: fewer or shorter app URLs."
    }
  }
}
