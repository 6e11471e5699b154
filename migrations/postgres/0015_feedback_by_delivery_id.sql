-- no-transaction
-- `tayori prune` deletes deliveries with their feedback timeline; the foreign-key check of each
-- deleted delivery (`select 1 from delivery_feedback where delivery_id = $1`) needs an index that
-- leads with the delivery id. The primary key (tenant_id, delivery_id, feedback_id) stays: the
-- reputation guard counts a tenant's recent bounces through it.
create index concurrently if not exists delivery_feedback_delivery_id
    on delivery_feedback (delivery_id);
