-- The admin API and console: operators' tokens, what they did, suppressions they (and later the
-- SES feedback loop) add, and the links from a resent or replayed delivery to its origin.

-- Bearer tokens. Only the SHA-256 of a token is kept: the token itself is shown once, at creation.
create table admin_tokens (
    token_id     uuid        primary key,
    token_sha256 text        not null unique,
    role         text        not null check (role in ('admin', 'operator', 'viewer')),
    -- The tenants the token may see; null means every tenant.
    tenants      text[],
    label        text        not null default '',
    created_at   timestamptz not null,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

-- Who did what, when, on which tenant and object. Written in the same transaction as the action
-- where the action is a database change, so an action without its entry cannot happen.
create table admin_audit (
    audit_id    bigserial   primary key,
    at          timestamptz not null,
    token_id    uuid        not null,
    role        text        not null,
    action      text        not null,
    tenant_id   text,
    object_kind text,
    object_id   text,
    reason      text,
    detail      jsonb       not null default '{}'
);
create index admin_audit_at on admin_audit (at desc, audit_id desc);
create index admin_audit_tenant_at on admin_audit (tenant_id, at desc, audit_id desc);

-- Addresses a tenant must not mail. General on purpose: operators add entries today, the SES
-- feedback loop (bounces, complaints) will add its own with cause 'bounce' or 'complaint'.
create table suppressions (
    suppression_id bigserial   primary key,
    tenant_id      text        not null,
    address        text        not null,
    -- A message class ('transactional', 'subscription') the entry is limited to; null: all mail.
    message_class  text,
    reason         text        not null,
    cause          text        not null default 'operator',
    created_by     text        not null,
    created_at     timestamptz not null
);
-- One entry per tenant, address and class (null counted as one class). Addresses match without
-- regard to case: mail systems treat Taro@ and taro@ as one mailbox, and so does a suppression.
create unique index suppressions_tenant_address_class
    on suppressions (tenant_id, lower(address), coalesce(message_class, ''));

-- A delivery made by an operator from an earlier one: a resend of any delivery, or a replay of a
-- rejected event. The new delivery's key is derived from the origin (`tayori:resend` /
-- `tayori:replay`, `<origin delivery id>:<n>`), so the row exists before the new delivery does.
create table delivery_links (
    tenant_id          text        not null,
    delivery_id        uuid        not null,
    origin_delivery_id uuid        not null,
    kind               text        not null check (kind in ('resend', 'replay')),
    n                  integer     not null,
    reason             text        not null,
    created_by         uuid        not null,
    created_at         timestamptz not null,
    primary key (tenant_id, delivery_id),
    unique (tenant_id, origin_delivery_id, kind, n)
);

-- The console finds a delivery by its recipient in any tenant ("I never got the deposit email").
create index deliveries_recipient_created
    on deliveries (recipient, created_at desc, delivery_id desc);
-- ... and by event type within a tenant.
create index deliveries_tenant_type_created
    on deliveries (tenant_id, event_type, created_at desc, delivery_id desc);

-- When an unkeyed rejection was last replayed, and what came of it.
alter table unkeyed_rejections add column replayed_at timestamptz;
alter table unkeyed_rejections add column replay_result text;
