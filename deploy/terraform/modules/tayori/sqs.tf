# The events queue (products publish, workers consume) and the feedback queue (SES sending events
# through SNS), each with a dead-letter queue. Server-side encryption with SQS-managed keys.

resource "aws_sqs_queue" "events_dlq" {
  name                      = "${var.name}-events-dlq"
  message_retention_seconds = var.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "events" {
  name                       = "${var.name}-events"
  visibility_timeout_seconds = var.events_visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  # Long polling by default too, for any consumer that does not ask for it.
  receive_wait_time_seconds = 20
  sqs_managed_sse_enabled   = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.events_dlq.arn
    maxReceiveCount     = var.events_max_receive_count
  })
  tags = var.tags
}

# Only the events queue may dead-letter into its DLQ; also what lets the console's "redrive"
# (StartMessageMoveTask) send messages back to it.
resource "aws_sqs_queue_redrive_allow_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events.arn]
  })
}

# Queues of their own for tenants that need hard isolation (tenants[*].dedicated_queue): the same
# settings as the shared events queue, each with its own DLQ.
locals {
  dedicated_tenants = toset([for id, t in var.tenants : id if t.dedicated_queue])
}

resource "aws_sqs_queue" "dedicated_dlq" {
  for_each                  = local.dedicated_tenants
  name                      = "${var.name}-${each.key}-events-dlq"
  message_retention_seconds = var.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = merge(var.tags, { "tayori-tenant" = each.key })
}

resource "aws_sqs_queue" "dedicated" {
  for_each                   = local.dedicated_tenants
  name                       = "${var.name}-${each.key}-events"
  visibility_timeout_seconds = var.events_visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dedicated_dlq[each.key].arn
    maxReceiveCount     = var.events_max_receive_count
  })
  tags = merge(var.tags, { "tayori-tenant" = each.key })
}

resource "aws_sqs_queue_redrive_allow_policy" "dedicated_dlq" {
  for_each  = local.dedicated_tenants
  queue_url = aws_sqs_queue.dedicated_dlq[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.dedicated[each.key].arn]
  })
}

resource "aws_sqs_queue" "feedback_dlq" {
  name                      = "${var.name}-feedback-dlq"
  message_retention_seconds = var.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "feedback" {
  name                       = "${var.name}-feedback"
  visibility_timeout_seconds = 60
  message_retention_seconds  = var.message_retention_seconds
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.feedback_dlq.arn
    maxReceiveCount     = 10
  })
  tags = var.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "feedback_dlq" {
  queue_url = aws_sqs_queue.feedback_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.feedback.arn]
  })
}

# The SES events topic may deliver to the feedback queue; nothing else may. A forged complaint or
# bounce suppresses an address, so the Allow is not enough: an explicit Deny also overrides any
# role in the account whose own policy grants sqs:SendMessage on "*". Only the roles that redrive
# the feedback DLQ (local.redrive_principal_arns) may send besides the topic.
data "aws_iam_policy_document" "feedback_queue" {
  statement {
    sid       = "SesEventsTopic"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.feedback.arn]

    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.ses_events.arn]
    }
  }

  statement {
    sid       = "DenyAllButSesEventsTopic"
    effect    = "Deny"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.feedback.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    # A request without aws:SourceArn (any IAM principal's own call) matches too: a negated
    # operator is true for a missing key.
    condition {
      test     = "ArnNotEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.ses_events.arn]
    }

    dynamic "condition" {
      for_each = length(local.redrive_principal_arns) > 0 ? [1] : []
      content {
        test     = "ArnNotEquals"
        variable = "aws:PrincipalArn"
        values   = local.redrive_principal_arns
      }
    }
  }
}

resource "aws_sqs_queue_policy" "feedback" {
  queue_url = aws_sqs_queue.feedback.id
  policy    = data.aws_iam_policy_document.feedback_queue.json
}

# Who may publish events: the producers of each tenant (and the module-wide list), in the
# statements of data.aws_iam_policy_document.events_queue (iam.tf). Without any, the queue has no
# policy and producers in this account need sqs:SendMessage in their own policies.
resource "aws_sqs_queue_policy" "events" {
  count     = local.any_producers ? 1 : 0
  queue_url = aws_sqs_queue.events.id
  policy    = data.aws_iam_policy_document.events_queue[0].json
}

# A dedicated queue takes events from its own tenant's producers only.
resource "aws_sqs_queue_policy" "dedicated" {
  for_each  = local.dedicated_producers
  queue_url = aws_sqs_queue.dedicated[each.key].id
  policy    = data.aws_iam_policy_document.dedicated_queue[each.key].json
}
