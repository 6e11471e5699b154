# An example: tayori in production in Tokyo for the two demo tenants. Acme Bank gets its own
# configuration set and SES tenant; Acme Invest uses the default configuration set.
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
    "acme-bank" = {
      identities        = ["acme-bank.example"]
      configuration_set = "acme-bank-notices"
      ses_tenant        = true
      ses_tenant_name   = "acme-bank"
    }
    "acme-invest" = {
      identities = ["acme-invest.example"]
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
