-- Checks the rows written before 0010 against the new foreign keys. Validation locks the tables
-- only against schema changes, not against writes, so it may take as long as it needs.
alter table delivery_attempts validate constraint delivery_attempts_delivery_id_fkey;
alter table delivery_feedback validate constraint delivery_feedback_delivery_id_fkey;
