-- One row per idempotency key (tenant, source, event id): the delivery and its outcome.
-- Times are written from the workers' clocks, never now(), so leases mean the same to every
-- worker and tests can move time.
create table deliveries (
    tenant_id           text        not null,
    source              text        not null,
    event_id            text        not null,
    -- Derived from the key (UUIDv5), so it is known before the event is processed.
    delivery_id         uuid        not null,
    event_type          text,
    recipient           text,
    status              text        not null
        check (status in ('processing', 'sent', 'suppressed', 'rejected', 'failed')),
    reason              text,
    provider_message_id text,
    subject             text,
    claim_count         integer     not null default 1,
    duplicate_count     integer     not null default 0,
    lease_owner         text,
    -- Set while processing; a claim may take over once it has passed.
    lease_expires_at    timestamptz,
    event_json          text,
    -- For events that broke the contract: the first 64 KiB of the body as received.
    raw_body            bytea,
    raw_body_size       integer,
    created_at          timestamptz not null,
    updated_at          timestamptz not null,
    decided_at          timestamptz,
    primary key (tenant_id, source, event_id),
    unique (tenant_id, delivery_id)
);

-- Tenant-scoped listing, newest first, with and without a status filter.
create index deliveries_tenant_created on deliveries (tenant_id, created_at desc, delivery_id desc);
create index deliveries_tenant_status_created
    on deliveries (tenant_id, status, created_at desc, delivery_id desc);
-- Operators with every tenant in scope list and look up across tenants: delivery ids are
-- global (the tenant is part of what they are derived from), so these two lead without it.
create index deliveries_created on deliveries (created_at desc, delivery_id desc);
create index deliveries_delivery_id on deliveries (delivery_id);

-- Every send attempt, recorded before the send and completed after it: an attempt without a
-- result is a send whose worker died, which may or may not have reached the mail service.
create table delivery_attempts (
    tenant_id   text        not null,
    delivery_id uuid        not null,
    attempt     integer     not null,
    started_at  timestamptz not null,
    finished_at timestamptz,
    result      text check (result in ('accepted', 'transient_error', 'permanent_error', 'unknown')),
    detail      text,
    primary key (tenant_id, delivery_id, attempt),
    foreign key (tenant_id, delivery_id) references deliveries (tenant_id, delivery_id)
);

-- Bodies that yielded no idempotency key (not JSON, no tenant, ...), once per distinct body.
-- They have no reliable tenant, so this table cannot lead with one.
create table unkeyed_rejections (
    body_sha256   text        primary key,
    tenant_id     text,
    reason        text        not null,
    raw_body      bytea       not null,
    body_size     integer     not null,
    times_seen    integer     not null default 1,
    first_seen_at timestamptz not null,
    last_seen_at  timestamptz not null
);
create index unkeyed_rejections_last_seen on unkeyed_rejections (last_seen_at desc);
