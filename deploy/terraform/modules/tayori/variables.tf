variable "name" {
  description = "Prefix of every resource name (e.g. \"tayori-prod\"): queues, topic, configuration set, roles."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name))
    error_message = "name must be 1-40 letters, digits, '-' or '_' (it prefixes SQS queue names, limit 80)."
  }
}

variable "tenants" {
  description = <<-EOT
    tayori tenants, keyed by tenant id (the folder name under templates/). For each:
      identities         - SES identities (domains or addresses) the tenant sends from; they must
                           exist and be verified already (DNS is not managed here).
      configuration_set  - the SES configuration set its sends name (templates/<tenant>/tenant.toml
                           [ses].configuration_set); null = the module's default set.
      ses_tenant         - create an SES tenant (reputation and pause isolation per tayori tenant)
                           named ses_tenant_name (default: the tenant id), associated with its
                           identities and configuration set. tenant.toml [ses].tenant_name must match.
      producer_role_arns - IAM roles (or users) of the product that publish its events: the policy
                           of its events queue allows them sqs:SendMessage (one statement per
                           tenant), in this account or another. Which tenant's events each may
                           publish is tenant.toml's `producers` (their unique ids, AROA...),
                           checked by tayori.
      dedicated_queue    - give the tenant an events queue of its own, <name>-<tenant>-events, with
                           its own DLQ, instead of the shared one; its producers may send only
                           there. The workers consume it as a [[dedicated_queues]] entry (output
                           dedicated_queues_toml).
  EOT
  type = map(object({
    identities         = list(string)
    configuration_set  = optional(string)
    ses_tenant         = optional(bool, false)
    ses_tenant_name    = optional(string)
    producer_role_arns = optional(list(string), [])
    dedicated_queue    = optional(bool, false)
  }))
  default = {}

  validation {
    condition = alltrue(flatten([
      for t in values(var.tenants) : [
        for arn in t.producer_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", arn))
      ]
    ]))
    error_message = "producer_role_arns must be IAM role or user ARNs (arn:aws:iam::<account>:role/<name>)."
  }

  validation {
    condition = alltrue([
      for id, t in var.tenants : !t.dedicated_queue || length("${var.name}-${id}-events-dlq") <= 80
    ])
    error_message = "A dedicated queue's name, <name>-<tenant>-events-dlq, must be at most 80 characters (SQS's limit): shorten name."
  }
}

variable "events_visibility_timeout_seconds" {
  description = "Visibility timeout of the events queue; keep equal to queue.visibility_timeout_seconds in the worker's configuration."
  type        = number
  default     = 60
}

variable "events_max_receive_count" {
  description = "Receives of one message before SQS moves it to the dead-letter queue. Above delivery.max_attempts (default 10), so that tayori decides a message (failed, recorded) before SQS gives up on it; a message in the DLQ is one tayori could not even claim, e.g. the store was down for the whole time."
  type        = number
  default     = 15

  validation {
    condition     = var.events_max_receive_count >= 2 && var.events_max_receive_count <= 1000
    error_message = "events_max_receive_count must be between 2 and 1000."
  }
}

variable "message_retention_seconds" {
  description = "How long the events and feedback queues keep a message (SQS allows at most 14 days)."
  type        = number
  default     = 345600 # 4 days
}

variable "dlq_retention_seconds" {
  description = "How long the dead-letter queues keep a message: the time operators have to fix a cause and redrive."
  type        = number
  default     = 1209600 # 14 days, SQS's maximum
}

variable "ses_event_types" {
  description = "SES sending events published to the feedback queue."
  type        = list(string)
  default     = ["SEND", "REJECT", "BOUNCE", "COMPLAINT", "DELIVERY", "DELIVERY_DELAY", "RENDERING_FAILURE"]
}

variable "tls_policy" {
  description = "SES delivery TLS policy of the configuration sets: REQUIRE (refuse to deliver to a receiving server without TLS) or OPTIONAL."
  type        = string
  default     = "REQUIRE"

  validation {
    condition     = contains(["REQUIRE", "OPTIONAL"], var.tls_policy)
    error_message = "tls_policy must be REQUIRE or OPTIONAL."
  }
}

variable "producer_principal_arns" {
  description = "IAM principals allowed sqs:SendMessage on the events queue for every tenant. Prefer each tenant's producer_role_arns; empty (with no producer_role_arns either): grant it in the producers' own policies instead."
  type        = list(string)
  default     = []
}

variable "redrive_principal_arns" {
  description = "IAM roles that send back to the source queues what their DLQs hold (`tayori dlq redrive`, the console's Dead letters page): the admin policy's roles when they are your own (eks_oidc_provider_arn null). The queues' policies deny sqs:SendMessage to every principal but the producers, the SES events topic and these (the module's admin role is added by itself)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.redrive_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", arn))])
    error_message = "redrive_principal_arns must be IAM role or user ARNs (arn:aws:iam::<account>:role/<name>)."
  }
}

variable "eks_oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider. When set, the module creates the worker and admin IAM roles for IRSA; when null, attach the policy outputs to roles of your own."
  type        = string
  default     = null
}

variable "kubernetes_namespace" {
  description = "Namespace of the tayori ServiceAccounts (deploy/kubernetes)."
  type        = string
  default     = "tayori"
}

variable "worker_service_account" {
  description = "ServiceAccount of the worker pods."
  type        = string
  default     = "tayori-worker"
}

variable "admin_service_account" {
  description = "ServiceAccount of the admin pods."
  type        = string
  default     = "tayori-admin"
}

variable "tags" {
  description = "Tags on every resource that takes them."
  type        = map(string)
  default     = {}
}
