terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # aws_sesv2_tenant and aws_sesv2_tenant_resource_association (SES tenants) need a 6.x
      # provider from 2026; older 6.x providers reject those two resource types.
      version = ">= 6.28, < 7.0"
    }
  }
}
