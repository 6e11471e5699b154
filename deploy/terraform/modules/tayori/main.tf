# tayori's AWS side: the queues, the SES configuration sets whose sending events come back
# through SNS to the feedback queue, optional SES tenants, and least-privilege IAM.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.region
  partition = data.aws_partition.current.partition

  # The default configuration set, for tenants that name none.
  default_configuration_set = var.name

  # Every configuration set a tenant's sends may name: the default plus the tenants' own.
  configuration_sets = toset(concat(
    [local.default_configuration_set],
    [for t in values(var.tenants) : t.configuration_set if t.configuration_set != null],
  ))

  tenant_configuration_set = {
    for id, t in var.tenants : id => coalesce(t.configuration_set, local.default_configuration_set)
  }

  identity_arns = {
    for id, t in var.tenants : id => [
      for identity in t.identities :
      "arn:${local.partition}:ses:${local.region}:${local.account}:identity/${identity}"
    ]
  }

  ses_tenants = {
    for id, t in var.tenants : id => coalesce(t.ses_tenant_name, id) if t.ses_tenant
  }

  # (tenant, resource ARN) pairs to associate: an attributed send (TenantName on SendEmail) is
  # refused unless every resource it names, identity and configuration set, is associated.
  ses_tenant_associations = merge([
    for id, _ in local.ses_tenants : merge(
      { for arn in local.identity_arns[id] : "${id} ${arn}" => { tenant = id, arn = arn } },
      {
        "${id} configuration-set" = {
          tenant = id
          arn    = aws_sesv2_configuration_set.this[local.tenant_configuration_set[id]].arn
        }
      },
    )
  ]...)
}
