# Inputs of a Tempest environment. modules/aws and modules/azure declare exactly these
# variables (names, types, defaults and validations); terraform/testing/parity.py checks it.

variable "name_prefix" {
  description = "Prefix of every resource name (and of the pub/sub entities): lowercase letters, digits and single hyphens, starting with a letter, 2-21 characters."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name_prefix)) && !strcontains(var.name_prefix, "--") && !endswith(var.name_prefix, "-")
    error_message = "name_prefix must match ^[a-z][a-z0-9-]{1,20}$, with no double hyphen and no trailing hyphen."
  }
}

variable "region" {
  description = "Where the environment runs: the AWS region (eu-west-1) or the Azure location (westeurope)."
  type        = string
}

variable "retention_days" {
  description = "Days trace blocks are kept (the compactor's retention; the object store's lifecycle rule deletes two days later as a backstop)."
  type        = number
  default     = 14

  validation {
    condition     = var.retention_days >= 1 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days, at least 1."
  }
}

variable "compaction_schedule" {
  description = "When the compactor runs, in the cloud's own syntax: an EventBridge schedule expression on AWS (rate(5 minutes)), an NCRONTAB expression on Azure (0 */5 * * * *). null means every 5 minutes."
  type        = string
  default     = null
}

variable "function_memory_mb" {
  description = "Memory of every function, in MB (Lambda memory size; informational on the Azure Consumption plan, which gives each instance 1.5 GB)."
  type        = number
  default     = 128

  validation {
    condition     = var.function_memory_mb >= 128 && var.function_memory_mb <= 10240
    error_message = "function_memory_mb must be between 128 and 10240."
  }
}

variable "components" {
  description = "Which Dapr building blocks get a cloud component: state, pubsub, secrets. A disabled one gets no resources and no function."
  type = object({
    state   = optional(bool, true)
    pubsub  = optional(bool, true)
    secrets = optional(bool, true)
  })
  default = {}
}

variable "apps" {
  description = "The apps Tempest serves: app id => { url, topics it subscribes to }. Each app with topics gets a subscription queue per topic and a deliver function."
  type = map(object({
    url    = string
    topics = optional(list(string), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for id, app in var.apps : can(regex("^[A-Za-z0-9_-]+$", id))])
    error_message = "App ids must match ^[A-Za-z0-9_-]+$."
  }

  validation {
    condition     = alltrue(flatten([for app in var.apps : [for t in app.topics : can(regex("^[A-Za-z0-9_-]+$", t))]]))
    error_message = "Topics must match ^[A-Za-z0-9_-]+$."
  }

  validation {
    condition     = alltrue([for app in var.apps : can(regex("^https?://[^\\s,=]+$", app.url))])
    error_message = "App URLs must be http:// or https:// URLs without spaces, commas or '='."
  }
}

variable "secrets" {
  description = "Secrets put in the secret store: name => value. Names are what apps ask for (/v1.0/secrets/secretstore/<name>)."
  type        = map(string)
  default     = {}
  sensitive   = true

  validation {
    # The names both clouds accept: Key Vault takes only letters, digits and hyphens.
    condition     = alltrue([for name in keys(var.secrets) : can(regex("^[A-Za-z0-9-]{1,127}$", name))])
    error_message = "Secret names must be 1-127 letters, digits or hyphens (what both Secrets Manager and Key Vault accept)."
  }
}

variable "allowed_tenants" {
  description = "Tenants (X-Scope-OrgID) that ingest and query accept; empty accepts every valid tenant."
  type        = list(string)
  default     = []
}

variable "api_token" {
  description = "Dapr API token (DAPR_API_TOKEN): when set, every Dapr API call except health checks must send it as dapr-api-token."
  type        = string
  default     = null
  sensitive   = true
}

variable "package_path" {
  description = "Path of the function package: dist/aws/bootstrap.zip (./scripts/package-lambda) on AWS, dist/azure/tempest-functions.zip (./scripts/package-azure) on Azure."
  type        = string
}

variable "log_retention_days" {
  description = "Days function logs are kept (CloudWatch Logs on AWS; on Azure the Log Analytics workspace keeps at least 30)."
  type        = number
  default     = 7

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "tags" {
  description = "Tags put on every resource."
  type        = map(string)
  default     = {}
}
