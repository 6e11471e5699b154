-- The attempts and the feedback point at their delivery by `delivery_id` alone (see 0009); the
-- tenant column stays on both tables for tenant-scoped reads. `not valid`: the existing rows are
-- checked by 0011 without blocking writes; new rows are checked from now on.
--
-- These statements lock the three tables against writes, for a moment only. The workers write
-- `deliveries` then `delivery_attempts` (claims) and `delivery_attempts` then `deliveries`
-- (outcomes), so a migration that waits for one table's lock while holding another's can close a
-- deadlock with them, and PostgreSQL would then fail one of the two after `deadlock_timeout`
-- (1 s by default), perhaps a worker's write. So the migration takes the three locks together
-- and waits at most 100 ms for them; a try that times out gives back what it took (each try is
-- a subtransaction) and pauses for about a second, so that the workers' writes held up behind
-- it catch up, before the next. Under a load near the database's limit every try can fail:
-- then nothing is changed, and the migration can be run again at a quieter time.
do $$
begin
    perform set_config('lock_timeout', '100ms', true);
    for try in 1..50 loop
        begin
            lock table deliveries, delivery_attempts, delivery_feedback in access exclusive mode;
            raise notice 'locked deliveries, delivery_attempts and delivery_feedback at try %', try;
            return;
        exception when lock_not_available then
            perform pg_sleep(0.5 + random());
        end;
    end loop;
    raise exception 'could not lock deliveries, delivery_attempts and delivery_feedback together '
        'in 50 tries of 100 ms (about a minute); nothing was changed: run the migration again, '
        'at a quieter time if it repeats';
end
$$;

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
