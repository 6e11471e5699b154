# SES: configuration sets whose sending events (delivery, bounce, complaint, ...) go to an SNS
# topic the feedback queue subscribes to, and optional SES tenants, one per tayori tenant.
# Sending identities (domains, DKIM records) are not managed here: they need DNS and usually exist.

resource "aws_sns_topic" "ses_events" {
  name = "${var.name}-ses-events"
  tags = var.tags
}

# Only SES, for this account's configuration sets, may publish to the topic.
data "aws_iam_policy_document" "ses_events_topic" {
  statement {
    sid       = "SesPublishes"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.ses_events.arn]

    principals {
      type        = "Service"
      identifiers = ["ses.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ses:${local.region}:${local.account}:configuration-set/*"]
    }
  }
}

resource "aws_sns_topic_policy" "ses_events" {
  arn    = aws_sns_topic.ses_events.arn
  policy = data.aws_iam_policy_document.ses_events_topic.json
}

# Raw delivery: the feedback queue receives SES's event JSON itself, not an SNS envelope.
resource "aws_sns_topic_subscription" "feedback" {
  topic_arn            = aws_sns_topic.ses_events.arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.feedback.arn
  raw_message_delivery = true

  depends_on = [aws_sqs_queue_policy.feedback]
}

resource "aws_sesv2_configuration_set" "this" {
  for_each               = local.configuration_sets
  configuration_set_name = each.key

  delivery_options {
    tls_policy = var.tls_policy
  }

  reputation_options {
    reputation_metrics_enabled = true
  }

  sending_options {
    sending_enabled = true
  }

  tags = var.tags
}

resource "aws_sesv2_configuration_set_event_destination" "feedback" {
  for_each               = aws_sesv2_configuration_set.this
  configuration_set_name = each.value.configuration_set_name
  event_destination_name = "tayori-feedback"

  event_destination {
    enabled              = true
    matching_event_types = var.ses_event_types

    sns_destination {
      topic_arn = aws_sns_topic.ses_events.arn
    }
  }

  depends_on = [aws_sns_topic_policy.ses_events]
}

resource "aws_sesv2_tenant" "this" {
  for_each    = local.ses_tenants
  tenant_name = each.value
  tags        = merge(var.tags, { "tayori-tenant" = each.key })
}

resource "aws_sesv2_tenant_resource_association" "this" {
  for_each     = local.ses_tenant_associations
  tenant_name  = aws_sesv2_tenant.this[each.value.tenant].tenant_name
  resource_arn = each.value.arn
}
