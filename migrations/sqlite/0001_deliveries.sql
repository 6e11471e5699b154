-- The SQLite twin of migrations/postgres/0001_deliveries.sql; see the comments there.
-- Times are integer microseconds since the Unix epoch (UTC); ids are hyphenated UUID text.
create table deliveries (
    tenant_id           text    not null,
    source              text    not null,
    event_id            text    not null,
    delivery_id         text    not null,
    event_type          text,
    recipient           text,
    status              text    not null
        check (status in ('processing', 'sent', 'suppressed', 'rejected', 'failed')),
    reason              text,
    provider_message_id text,
    subject             text,
    claim_count         integer not null default 1,
    duplicate_count     integer not null default 0,
    lease_owner         text,
    lease_expires_at    integer,
    event_json          text,
    raw_body            blob,
    raw_body_size       integer,
    created_at          integer not null,
    updated_at          integer not null,
    decided_at          integer,
    primary key (tenant_id, source, event_id),
    unique (tenant_id, delivery_id)
);
create index deliveries_tenant_created on deliveries (tenant_id, created_at desc, delivery_id desc);
create index deliveries_tenant_status_created
    on deliveries (tenant_id, status, created_at desc, delivery_id desc);
create index deliveries_created on deliveries (created_at desc, delivery_id desc);
create index deliveries_delivery_id on deliveries (delivery_id);

create table delivery_attempts (
    tenant_id   text    not null,
    delivery_id text    not null,
    attempt     integer not null,
    started_at  integer not null,
    finished_at integer,
    result      text check (result in ('accepted', 'transient_error', 'permanent_error', 'unknown')),
    detail      text,
    primary key (tenant_id, delivery_id, attempt),
    foreign key (tenant_id, delivery_id) references deliveries (tenant_id, delivery_id)
);

create table unkeyed_rejections (
    body_sha256   text    primary key,
    tenant_id     text,
    reason        text    not null,
    raw_body      blob    not null,
    body_size     integer not null,
    times_seen    integer not null default 1,
    first_seen_at integer not null,
    last_seen_at  integer not null
);
create index unkeyed_rejections_last_seen on unkeyed_rejections (last_seen_at desc);
