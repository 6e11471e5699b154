-- no-transaction
-- The attempts keyed by delivery id and attempt number, without the tenant in front: delivery
-- ids are unique across tenants (0009), and `tayori prune` deletes deliveries, whose foreign-key
-- check (`select 1 from delivery_attempts where delivery_id = $1`) needs an index that leads with
-- the delivery id, or it reads the whole table for every delivery it deletes. 0014 makes this
-- index the primary key in place of (tenant_id, delivery_id, attempt), so that every attempt
-- still writes one index entry, not two. `concurrently` so that a large table keeps taking writes.
create unique index concurrently if not exists delivery_attempts_delivery_id_attempt
    on delivery_attempts (delivery_id, attempt);
