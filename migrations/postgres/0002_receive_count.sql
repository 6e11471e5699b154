-- The queue's receive count (SQS ApproximateReceiveCount) of the message at the latest claim:
-- how often the queue handed the event out before it was decided.
alter table deliveries add column receive_count integer not null default 1;
