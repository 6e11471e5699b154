output "events_queue_url" {
  description = "The events queue: TAYORI_QUEUE__URL of the worker, and the KEDA trigger's queueURL."
  value       = aws_sqs_queue.events.id
}

output "events_queue_arn" {
  description = "ARN of the events queue (grant producers sqs:SendMessage on it)."
  value       = aws_sqs_queue.events.arn
}

output "producer_policy_json" {
  description = "Per tenant: attach to its producer roles in their own account; sqs:SendMessage on the tenant's events queue, shared or dedicated (docs/tenancy.md)."
  value       = { for id, d in data.aws_iam_policy_document.producer : id => d.json }
}

output "dedicated_queue_urls" {
  description = "The events queue of each tenant that has its own (tenants[*].dedicated_queue)."
  value       = { for id, q in aws_sqs_queue.dedicated : id => q.id }
}

output "dedicated_dlq_urls" {
  description = "The dead-letter queue of each dedicated events queue: `tayori dlq redrive --from`."
  value       = { for id, q in aws_sqs_queue.dedicated_dlq : id => q.id }
}

output "dedicated_queues_toml" {
  description = "The workers' [[dedicated_queues]] as TAYORI_DEDICATED_QUEUES takes it (the tayori-aws ConfigMap's dedicated_queues), weight 1 each."
  value       = "[${join(", ", [for q in aws_sqs_queue.dedicated : "{url = \"${q.id}\", weight = 1}"])}]"
}

output "producer_role_arns" {
  description = "Producer roles allowed to publish to the events queue, per tenant (the queue's policy)."
  value       = local.tenant_producers
}

output "events_dlq_url" {
  description = "The events dead-letter queue: `tayori dlq redrive --from`."
  value       = aws_sqs_queue.events_dlq.id
}

output "feedback_queue_url" {
  description = "The feedback queue SES sending events arrive in (raw SES event JSON)."
  value       = aws_sqs_queue.feedback.id
}

output "feedback_dlq_url" {
  description = "The feedback dead-letter queue."
  value       = aws_sqs_queue.feedback_dlq.id
}

output "ses_events_topic_arn" {
  description = "The SNS topic SES publishes sending events to."
  value       = aws_sns_topic.ses_events.arn
}

output "configuration_sets" {
  description = "Configuration set of each tenant (tenant.toml [ses].configuration_set)."
  value       = local.tenant_configuration_set
}

output "ses_tenants" {
  description = "SES tenant name of each tayori tenant that has one (tenant.toml [ses].tenant_name)."
  value       = { for id, t in aws_sesv2_tenant.this : id => t.tenant_name }
}

output "worker_policy_arn" {
  description = "The worker's IAM policy."
  value       = aws_iam_policy.worker.arn
}

output "admin_policy_arn" {
  description = "The admin process's IAM policy."
  value       = aws_iam_policy.admin.arn
}

output "keda_scaler_policy_json" {
  description = "Attach to the KEDA operator's role: what its aws-sqs-queue scaler reads."
  value       = data.aws_iam_policy_document.keda_scaler.json
}

output "worker_role_arn" {
  description = "IRSA role of the worker ServiceAccount (null without eks_oidc_provider_arn)."
  value       = try(aws_iam_role.irsa["worker"].arn, null)
}

output "admin_role_arn" {
  description = "IRSA role of the admin ServiceAccount (null without eks_oidc_provider_arn)."
  value       = try(aws_iam_role.irsa["admin"].arn, null)
}
