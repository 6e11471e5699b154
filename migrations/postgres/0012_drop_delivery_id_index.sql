-- no-transaction
-- Replaced by the unique deliveries_delivery_id_key (0009).
drop index concurrently if exists deliveries_delivery_id;
