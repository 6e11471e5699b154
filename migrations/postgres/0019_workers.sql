-- The running `tayori worker` processes, so that they divide the SES account's send rate among
-- themselves (docs/operations.md, "How the send rate is shared"). Each beats its heartbeat every
-- `sender.registry_heartbeat_seconds`; one whose heartbeat is older than
-- `sender.registry_dead_after_seconds` counts as gone, one that stops gracefully deletes its row.
-- `id` is unique per process (the configured worker_id may be shared by many); `name` is the
-- worker_id shown in logs and claims. Rows unheard of for an hour are deleted by the heartbeats.
-- A new table: nothing older reads or locks it.
create table workers (
    id           text        primary key,
    name         text        not null,
    started_at   timestamptz not null,
    heartbeat_at timestamptz not null
);
