-- no-transaction
-- Deliveries in `processing` (in flight, or stuck after a crash), found without a scan. Keyed by
-- delivery id, whose values are spread evenly, so concurrent claims do not all write into the
-- same index page; there are few such rows, and a search sorts them.
create index concurrently if not exists deliveries_processing
    on deliveries (tenant_id, delivery_id)
    where status = 'processing';
