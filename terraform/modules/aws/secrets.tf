# secretstores.aws.secretmanager: one secret per entry of var.secrets, named exactly as apps
# ask for it (/v1.0/secrets/secretstore/<name>), so names are unique per account and region:
# two environments in one region must not declare the same secret name. The tags say which
# environment owns a secret.

resource "aws_secretsmanager_secret" "secret" {
  #checkov:skip=CKV_AWS_149:Encrypted with the AWS managed key (aws/secretsmanager); a customer managed KMS key costs $1/month idle.
  #checkov:skip=CKV2_AWS_57:Values come from Terraform (var.secrets); rotation would need a rotation Lambda per secret and fight Terraform.
  for_each = var.components.secrets ? toset(nonsensitive(keys(var.secrets))) : toset([])
  name     = each.key
  # Deleted at once on destroy, so an environment can be re-created with the same names.
  recovery_window_in_days = 0
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "secret" {
  for_each      = aws_secretsmanager_secret.secret
  secret_id     = each.value.id
  secret_string = var.secrets[each.key]
}
