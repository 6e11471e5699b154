# Least-privilege policies for the two tayori processes, and (with an EKS OIDC provider) the IRSA
# roles that carry them. Each statement names the call that needs it.

locals {
  # The events queues the workers consume: the shared one and the tenants' dedicated ones.
  events_queue_arns = concat([aws_sqs_queue.events.arn], [for q in aws_sqs_queue.dedicated : q.arn])
  events_dlq_arns   = concat([aws_sqs_queue.events_dlq.arn], [for q in aws_sqs_queue.dedicated_dlq : q.arn])

  all_identity_arns = distinct(flatten(values(local.identity_arns)))
  # A send names the tenant's configuration set, and its SES tenant when it has one.
  send_resources = concat(
    local.all_identity_arns,
    [for cs in aws_sesv2_configuration_set.this : cs.arn],
    [for t in aws_sesv2_tenant.this : t.arn],
  )
}

data "aws_iam_policy_document" "worker" {
  # The consumer: long poll, delete after the outcome is recorded, extend visibility while
  # working (heartbeat) and set it for a backoff or a hand-back; read the redrive policy's
  # maxReceiveCount at start (a message one receive short of it is never handed back).
  statement {
    sid = "ConsumeEvents"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = local.events_queue_arns
  }

  # The feedback consumer (bounces, complaints, deliveries) runs in the worker process.
  statement {
    sid = "ConsumeFeedback"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [aws_sqs_queue.feedback.arn]
  }

  # SES v2 SendEmail, raw content; only from the tenants' identities, configuration sets and
  # SES tenants.
  dynamic "statement" {
    for_each = length(local.all_identity_arns) > 0 ? [1] : []
    content {
      sid       = "SendAsTenants"
      actions   = ["ses:SendEmail"]
      resources = local.send_resources
    }
  }

  # The account's send rate, read at start and every sender.quota_refresh_seconds, which the
  # workers divide among themselves (sender.read_account_send_rate). Not scoped by resource in
  # SES.
  statement {
    sid       = "ReadSendQuota"
    actions   = ["ses:GetAccount"]
    resources = ["*"]
  }
}

# Producers: the shared events queue's policy lets each tenant's producer roles (var.tenants[*]
# .producer_role_arns) and the module-wide var.producer_principal_arns send to it; a tenant with a
# dedicated queue has its producers on that queue's policy instead. IAM only says who may send at
# all; which tenant's events a producer may publish is tenant.toml's `producers`, which tayori
# checks against the SenderId SQS records on every message (docs/tenancy.md).
locals {
  tenant_producers = {
    for id, t in var.tenants : id => distinct(t.producer_role_arns) if length(t.producer_role_arns) > 0
  }
  shared_producers    = { for id, arns in local.tenant_producers : id => arns if !var.tenants[id].dedicated_queue }
  dedicated_producers = { for id, arns in local.tenant_producers : id => arns if var.tenants[id].dedicated_queue }
  any_producers       = length(local.shared_producers) > 0 || length(var.producer_principal_arns) > 0

  # Who may send to the shared events queue at all; anyone else is denied explicitly (below), even
  # a role of this account whose own policy allows sqs:SendMessage on "*". The roles that redrive
  # the DLQs send too (`tayori dlq redrive`, the console).
  shared_senders = distinct(concat(
    var.producer_principal_arns,
    flatten(values(local.shared_producers)),
    local.redrive_principal_arns,
  ))
  redrive_principal_arns = distinct(concat(
    var.redrive_principal_arns,
    [for role, r in aws_iam_role.irsa : r.arn if role == "admin"],
  ))

  # Each tenant's events queue: its dedicated one, or the shared one.
  tenant_queue_arn = {
    for id, t in var.tenants : id => t.dedicated_queue ? aws_sqs_queue.dedicated[id].arn : aws_sqs_queue.events.arn
  }
}

data "aws_iam_policy_document" "events_queue" {
  count = local.any_producers ? 1 : 0

  dynamic "statement" {
    for_each = length(var.producer_principal_arns) > 0 ? [1] : []
    content {
      sid       = "Producers"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.events.arn]

      principals {
        type        = "AWS"
        identifiers = var.producer_principal_arns
      }
    }
  }

  # One statement per tenant, named after it (acme-pay -> ProducersAcmePay), so that a review of
  # the policy shows which product each principal publishes for.
  dynamic "statement" {
    for_each = local.shared_producers
    content {
      sid       = "Producers${replace(title(statement.key), "/[^A-Za-z0-9]/", "")}"
      actions   = ["sqs:SendMessage"]
      resources = [aws_sqs_queue.events.arn]

      principals {
        type        = "AWS"
        identifiers = statement.value
      }
    }
  }

  statement {
    sid       = "DenyAllButProducers"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    # aws:PrincipalArn is the role's ARN for its sessions, in this account or another; a request
    # without it (a service) matches too.
    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = local.shared_senders
    }
  }
}

data "aws_iam_policy_document" "dedicated_queue" {
  for_each = local.dedicated_producers

  statement {
    sid       = "Producers${replace(title(each.key), "/[^A-Za-z0-9]/", "")}"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dedicated[each.key].arn]

    principals {
      type        = "AWS"
      identifiers = each.value
    }
  }

  # Everyone else (the other tenants' producers included) is denied, as on the shared queue.
  statement {
    sid       = "DenyAllButProducers"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dedicated[each.key].arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = distinct(concat(each.value, local.redrive_principal_arns))
    }
  }
}

# For the producers' own roles, per tenant (its queue): a role in another account needs this in
# its own policies too (cross-account access needs both sides); a role in this account needs
# either.
data "aws_iam_policy_document" "producer" {
  for_each = var.tenants

  statement {
    sid       = "PublishTayoriEvents"
    actions   = ["sqs:SendMessage"]
    resources = [local.tenant_queue_arn[each.key]]
  }
}

data "aws_iam_policy_document" "admin" {
  # The console's queue depths (visible, in flight, oldest age) for every queue.
  statement {
    sid     = "ReadQueueDepths"
    actions = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = concat(
      local.events_queue_arns,
      local.events_dlq_arns,
      [aws_sqs_queue.feedback.arn, aws_sqs_queue.feedback_dlq.arn],
    )
  }

  # `tayori dlq redrive` and the console's Dead letters page (a look with visibility 0, and its
  # redrive): receive from a DLQ, send to its source queue, then delete from the DLQ.
  statement {
    sid       = "RedriveFromDeadLetterQueues"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
    resources = concat(local.events_dlq_arns, [aws_sqs_queue.feedback_dlq.arn])
  }

  statement {
    sid       = "RedriveToSourceQueues"
    actions   = ["sqs:SendMessage"]
    resources = concat(local.events_queue_arns, [aws_sqs_queue.feedback.arn])
  }

  # Reading the sending state the console shows (account quota, tenant pauses in SES).
  statement {
    sid       = "ReadSesState"
    actions   = ["ses:GetAccount"]
    resources = ["*"]
  }
}

# For the KEDA operator's role: the queue depth its aws-sqs-queue scaler reads.
data "aws_iam_policy_document" "keda_scaler" {
  statement {
    sid       = "ReadEventsQueueDepth"
    actions   = ["sqs:GetQueueAttributes"]
    resources = local.events_queue_arns
  }
}

resource "aws_iam_policy" "worker" {
  name        = "${var.name}-worker"
  description = "tayori worker: consume the events and feedback queues, send through SES."
  policy      = data.aws_iam_policy_document.worker.json
  tags        = var.tags
}

resource "aws_iam_policy" "admin" {
  name        = "${var.name}-admin"
  description = "tayori admin: read queue depths, redrive dead-letter queues."
  policy      = data.aws_iam_policy_document.admin.json
  tags        = var.tags
}

# IRSA: a role per ServiceAccount, assumable only by that ServiceAccount's pods.
locals {
  irsa_roles = var.eks_oidc_provider_arn == null ? {} : {
    worker = { service_account = var.worker_service_account, policy = aws_iam_policy.worker.arn }
    admin  = { service_account = var.admin_service_account, policy = aws_iam_policy.admin.arn }
  }
  # "arn:aws:iam::123456789012:oidc-provider/oidc.eks.<region>.amazonaws.com/id/XXXX" -> the issuer.
  oidc_issuer = var.eks_oidc_provider_arn == null ? "" : element(split("oidc-provider/", var.eks_oidc_provider_arn), 1)
}

data "aws_iam_policy_document" "irsa_trust" {
  for_each = local.irsa_roles

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.eks_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.kubernetes_namespace}:${each.value.service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  for_each           = local.irsa_roles
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust[each.key].json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "irsa" {
  for_each   = local.irsa_roles
  role       = aws_iam_role.irsa[each.key].name
  policy_arn = each.value.policy
}
