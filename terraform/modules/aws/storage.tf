# Trace blocks (S3) and the state store (DynamoDB).

resource "aws_s3_bucket" "traces" {
  #checkov:skip=CKV_AWS_18:Server access logs of a trace bucket would cost more than the data itself; CloudTrail data events can be enabled account-wide if needed.
  #checkov:skip=CKV_AWS_21:Versioning is not wanted: blocks are immutable, the compactor deletes them on purpose, and old versions would keep costing after retention.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles the cost of a disposable demo/test environment; blocks are re-creatable telemetry.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES256) is used: SSE-KMS would add a KMS request charge to every block read and write, against the zero-idle-cost goal.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new blocks; event notifications have no consumer.
  bucket        = local.traces_bucket
  force_destroy = true
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "traces" {
  bucket                  = aws_s3_bucket.traces.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "traces" {
  bucket = aws_s3_bucket.traces.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "traces" {
  bucket = aws_s3_bucket.traces.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "traces" {
  bucket = aws_s3_bucket.traces.id

  rule {
    id     = "expire-blocks"
    status = "Enabled"
    filter {
      prefix = "blocks/"
    }
    # The compactor applies the retention; this only catches what it missed.
    expiration {
      days = var.retention_days + 2
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_policy" "traces" {
  bucket = aws_s3_bucket.traces.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.traces.arn, "${aws_s3_bucket.traces.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.traces]
}

resource "aws_dynamodb_table" "state" {
  #checkov:skip=CKV_AWS_119:Encrypted with the AWS managed key; a customer managed KMS key costs $1/month idle, against the zero-idle-cost goal.
  count        = var.components.state ? 1 : 0
  name         = "${local.prefix}-state"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "key"

  attribute {
    name = "key"
    type = "S"
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }

  tags = local.tags
}
