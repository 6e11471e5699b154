-- The attempts and the feedback point at their delivery by `delivery_id` alone (see 0009); the
-- tenant column stays on both tables for tenant-scoped reads. `not valid`: the existing rows are
-- checked by 0011 without blocking writes; new rows are checked from now on. Every statement
-- here takes its locks for a moment only; a lock timeout makes the migration fail (retry it)
-- rather than queue the workers' writes behind a long-running reader.
set local lock_timeout = '10s';

alter table deliveries
    add constraint deliveries_delivery_id_key unique using index deliveries_delivery_id_key;

alter table delivery_attempts
    drop constraint delivery_attempts_tenant_id_delivery_id_fkey,
    add constraint delivery_attempts_delivery_id_fkey
        foreign key (delivery_id) references deliveries (delivery_id) not valid;

alter table delivery_feedback
    drop constraint delivery_feedback_tenant_id_delivery_id_fkey,
    add constraint delivery_feedback_delivery_id_fkey
        foreign key (delivery_id) references deliveries (delivery_id) not valid;

alter table deliveries drop constraint deliveries_tenant_id_delivery_id_key;
