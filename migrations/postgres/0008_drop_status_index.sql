-- no-transaction
-- Replaced by deliveries_tenant_decided_created and deliveries_processing (0006, 0007).
drop index concurrently if exists deliveries_tenant_status_created;
