-- Events of a tenant paused by an operator or the reputation guard, held until the resume
-- (docs/admin.md, "Pausing a tenant"): the worker keeps the message body here and deletes it from
-- the queue, where every return would count towards the dead-letter queue's maxReceiveCount.
-- Each worker leases batches of the held events of tenants no longer paused and hands them back
-- to the event path; `lease` counts the leases, so that a worker whose lease ran out (or whose
-- event was held again) does not forget the row. A new table: nothing older reads or locks it.
create table held_events (
    tenant_id     text        not null,
    source        text        not null,
    event_id      text        not null,
    event_type    text        not null,
    body          bytea       not null,
    receive_count integer     not null,
    reason        text        not null,
    held_at       timestamptz not null,
    lease         bigint      not null default 0,
    leased_until  timestamptz,
    primary key (tenant_id, source, event_id)
);

-- The release rounds take the oldest first.
create index held_events_by_held_at on held_events (held_at);
