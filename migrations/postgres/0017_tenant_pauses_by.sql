-- Who paused a tenant: an operator's token id (`POST /api/v1/tenants/{tenant}/pause`), or null for
-- the reputation guard. Workers read only `reason` and `resumed_at`, so binaries older than this
-- migration keep working beside it (a guard pause one of them renews keeps the last operator's
-- id). A nullable column without a default is a catalog change only; the lock timeout keeps it
-- from queueing the workers' pause reads behind a long transaction (rerun `tayori migrate` if it
-- times out).
set local lock_timeout = '5s';
alter table tenant_pauses add column paused_by text;
