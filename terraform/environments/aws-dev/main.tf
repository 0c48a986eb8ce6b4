# A Tempest environment. aws-dev and azure-dev differ only in this module's source and in
# providers.tf; terraform/testing/parity.py checks it.

module "tempest" {
  source = "../../modules/aws"

  name_prefix         = var.name_prefix
  region              = var.region
  retention_days      = var.retention_days
  compaction_schedule = var.compaction_schedule
  function_memory_mb  = var.function_memory_mb
  components          = var.components
  apps                = var.apps
  secrets             = var.secrets
  allowed_tenants     = var.allowed_tenants
  api_token           = var.api_token
  package_path        = var.package_path
  log_retention_days  = var.log_retention_days
  tags                = var.tags
}
