# Template of a Terraform override file that points environments/aws-dev at moto_server.
# A test copies terraform/ to a temporary folder, replaces every MOTO_ENDPOINT below with
# moto's URL (sed 's#MOTO_ENDPOINT#http://127.0.0.1:PORT#g') and writes the result into
# environments/aws-dev/moto_override.tf; Terraform merges it over providers.tf. The region
# stays var.region (pass region=us-east-1). The environment itself is not changed.

provider "aws" {
  #checkov:skip=CKV_AWS_41:moto's fixed test credentials, not an AWS key; used only against a local moto_server.
  access_key                  = "test"
  secret_key                  = "test"
  s3_use_path_style           = true
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  endpoints {
    apigatewayv2   = "MOTO_ENDPOINT"
    cloudwatchlogs = "MOTO_ENDPOINT"
    dynamodb       = "MOTO_ENDPOINT"
    events         = "MOTO_ENDPOINT"
    iam            = "MOTO_ENDPOINT"
    lambda         = "MOTO_ENDPOINT"
    s3             = "MOTO_ENDPOINT"
    secretsmanager = "MOTO_ENDPOINT"
    sns            = "MOTO_ENDPOINT"
    sqs            = "MOTO_ENDPOINT"
    sts            = "MOTO_ENDPOINT"
  }
}
