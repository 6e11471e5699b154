-- See migrations/postgres/0021_unknown_sends.sql. SQLite cannot change a check constraint, so
-- `deliveries` is rebuilt. `delivery_attempts` references it and foreign keys are on (they
-- cannot be turned off inside the migration's transaction), so the attempts are set aside first
-- and put back after.
create table delivery_attempts_copy as select * from delivery_attempts;
drop table delivery_attempts;

create table deliveries_new (
    tenant_id           text    not null,
    source              text    not null,
    event_id            text    not null,
    delivery_id         text    not null,
    event_type          text,
    recipient           text,
    status              text    not null
        check (status in ('processing', 'sent', 'suppressed', 'rejected', 'failed', 'unknown')),
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
    receive_count       integer not null default 1,
    reconciled_at       integer,
    primary key (tenant_id, source, event_id),
    unique (tenant_id, delivery_id)
);
insert into deliveries_new (tenant_id, source, event_id, delivery_id, event_type, recipient,
        status, reason, provider_message_id, subject, claim_count, duplicate_count, lease_owner,
        lease_expires_at, event_json, raw_body, raw_body_size, created_at, updated_at,
        decided_at, receive_count)
    select tenant_id, source, event_id, delivery_id, event_type, recipient, status, reason,
        provider_message_id, subject, claim_count, duplicate_count, lease_owner,
        lease_expires_at, event_json, raw_body, raw_body_size, created_at, updated_at,
        decided_at, receive_count
    from deliveries;
drop table deliveries;
alter table deliveries_new rename to deliveries;
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
insert into delivery_attempts select * from delivery_attempts_copy;
drop table delivery_attempts_copy;
