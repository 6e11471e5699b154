-- A send whose result is unknown (SES did not answer, or the worker died mid-send) leaves its
-- delivery `unknown` rather than `failed`: SES may have accepted it. An SES report about the
-- email, matched by its `tayori-delivery-id` tag, makes it `sent` with `reconciled_at` set; with
-- no report within `[feedback] unknown_send_window_seconds` it becomes `failed` ("not seen by
-- SES") and resendable (docs/idempotency.md, "Ambiguous sends").
alter table deliveries drop constraint deliveries_status_check;
-- `not valid`: the old check was narrower, so every row meets this one already; validating
-- would only scan the table under its lock.
alter table deliveries add constraint deliveries_status_check
    check (status in ('processing', 'sent', 'suppressed', 'rejected', 'failed', 'unknown'))
    not valid;
-- Nullable without a default: no table rewrite.
alter table deliveries add column reconciled_at timestamptz;
