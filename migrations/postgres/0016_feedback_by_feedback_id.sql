-- no-transaction
-- ... and deleting a feedback event checks `select 1 from delivery_feedback where feedback_id =
-- $1`: without this index, a read of the whole timeline table for every event deleted.
create index concurrently if not exists delivery_feedback_feedback_id
    on delivery_feedback (feedback_id);
