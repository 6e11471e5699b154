-- SES feedback (docs/feedback.md): what SES said about each sent email, in a timeline per
-- delivery, the delivery's feedback status, and every feedback message seen (for redeliveries,
-- and so that what matched nothing or could not be read is kept, not dropped).

-- Where the delivery stands by SES's feedback. Separate from `status`, the event's outcome,
-- which is terminal (docs/idempotency.md): a sent delivery stays `sent` and gains this.
-- Precedence (never moves down): complained > bounced > delivered > delayed > sent.
alter table deliveries add column feedback_status text
    check (feedback_status in ('sent', 'delayed', 'delivered', 'bounced', 'complained'));
alter table deliveries add column feedback_at timestamptz;

-- Feedback without the tayori tags finds its delivery by SES message id, which SES makes
-- globally unique: this lookup cannot lead with a tenant.
create index deliveries_provider_message_id
    on deliveries (provider_message_id) where provider_message_id is not null;

-- Every feedback message, once per identity (`sns:<MessageId>`, `eventbridge:<id>`,
-- `sha256:<hex>` of a raw SES event or of an unreadable body): SNS and SQS redeliver, and a
-- redelivery finds its identity here and changes nothing. No reliable tenant before matching,
-- so this table cannot lead with one (like unkeyed_rejections).
create table feedback_events (
    feedback_id    text        primary key,
    result         text        not null check (result in ('matched', 'unmatched', 'invalid')),
    kind           text,
    tenant_id      text,
    delivery_id    uuid,
    ses_message_id text,
    reason         text,
    -- The SES event (after unwrapping), or the first 64 KiB of an unreadable body, lossy UTF-8.
    body           text        not null,
    received_at    timestamptz not null
);
-- Operators look for what matched nothing or could not be read, newest first.
create index feedback_events_kept on feedback_events (received_at desc) where result <> 'matched';

-- A delivery's timeline: one row per feedback event matched to it.
create table delivery_feedback (
    tenant_id   text        not null,
    delivery_id uuid        not null,
    feedback_id text        not null references feedback_events (feedback_id),
    kind        text        not null,
    -- `Permanent/General`, `abuse`, a reject reason, a delay type, a link; no CR/LF.
    detail      text,
    recipients  text[]      not null default '{}',
    -- By SES's clock; null when the event carried no time.
    occurred_at timestamptz,
    received_at timestamptz not null,
    ses_event   jsonb       not null,
    primary key (tenant_id, delivery_id, feedback_id),
    foreign key (tenant_id, delivery_id) references deliveries (tenant_id, delivery_id)
);

-- Tenants the reputation guard paused (docs/feedback.md): while a tenant's row has no
-- resumed_at, workers leave its events on the queue instead of sending. Set in the feedback
-- transaction that takes the tenant over a threshold; cleared by an operator (audited). After a
-- resume the guard pauses again only once a whole window has passed, so that the bounces that
-- caused the pause do not pause it again at once.
create table tenant_pauses (
    tenant_id  text        primary key,
    reason     text        not null,
    paused_at  timestamptz not null,
    resumed_at timestamptz,
    resumed_by text
);
