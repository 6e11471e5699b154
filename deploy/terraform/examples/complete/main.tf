# An example: tayori in production in Tokyo for the three demo tenants. Acme Bank and Acme Pay get
# their own configuration sets and SES tenants; Acme Invest uses the default configuration set.
# Acme Bank has an events queue of its own; Acme Pay's producer role, in the payments team's own
# account, may publish to the shared one.
#
#   terraform init && terraform apply
#   terraform output   # the values deploy/kubernetes/overlays/<env> needs

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.28, < 7.0"
    }
  }
}

provider "aws" {
  region = "ap-northeast-1"

  default_tags {
    tags = {
      service     = "tayori"
      environment = "prod"
    }
  }
}

variable "eks_oidc_provider_arn" {
  description = "The EKS cluster's IAM OIDC provider (aws eks describe-cluster ... identity.oidc.issuer)."
  type        = string
}

module "tayori" {
  source = "../../modules/tayori"

  name                  = "tayori-prod"
  eks_oidc_provider_arn = var.eks_oidc_provider_arn
  kubernetes_namespace  = "tayori"

  tenants = {
    # A queue of its own (tayori-prod-acme-bank-events), which the example Kubernetes overlay
    # lists in dedicated_queues and KEDA watches.
    "acme-bank" = {
      identities        = ["acme-bank.example"]
      configuration_set = "acme-bank-notices"
      ses_tenant        = true
      ses_tenant_name   = "acme-bank"
      dedicated_queue   = true
    }
    "acme-invest" = {
      identities = ["acme-invest.example"]
    }
    # Onboarded by docs/tenancy.md: its own configuration set and SES tenant, and the payments
    # service's role as the one producer allowed to publish its events (tenant.toml `producers`
    # names the same role by its id, from `aws iam get-role --role-name acme-pay-notifier`).
    "acme-pay" = {
      identities         = ["acme-pay.example"]
      configuration_set  = "acme-pay-receipts"
      ses_tenant         = true
      ses_tenant_name    = "acme-pay"
      producer_role_arns = ["arn:aws:iam::210987654321:role/acme-pay-notifier"]
    }
  }
}

output "events_queue_url" {
  value = module.tayori.events_queue_url
}

output "events_dlq_url" {
  value = module.tayori.events_dlq_url
}

output "feedback_queue_url" {
  value = module.tayori.feedback_queue_url
}

output "producer_policy_json" {
  value = module.tayori.producer_policy_json
}

output "dedicated_queues_toml" {
  value = module.tayori.dedicated_queues_toml
}

output "dedicated_dlq_urls" {
  value = module.tayori.dedicated_dlq_urls
}

output "worker_role_arn" {
  value = module.tayori.worker_role_arn
}

output "admin_role_arn" {
  value = module.tayori.admin_role_arn
}

output "keda_scaler_policy_json" {
  value = module.tayori.keda_scaler_policy_json
}

output "configuration_sets" {
  value = module.tayori.configuration_sets
}
