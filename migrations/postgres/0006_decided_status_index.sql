-- no-transaction
-- The tenant + status index without the deliveries still in `processing`. Every delivery enters
-- `processing` at its claim and leaves it at its outcome milliseconds later; in the old index
-- those entries came and went at the newest end of one key range per tenant, where concurrent
-- writers queue for the same index page. With several workers on one database that cost about a
-- tenth of PostgreSQL's write throughput (docs/benchmarks.md, "The status index without
-- processing"). Decided statuses never change again, so this index only grows. `concurrently`
-- (one statement per file, outside a transaction: sqlx's `-- no-transaction`) so that a large
-- table keeps taking writes while it is built.
create index concurrently if not exists deliveries_tenant_decided_created
    on deliveries (tenant_id, status, created_at desc, delivery_id desc)
    where status <> 'processing';
