-- The primary key of the attempts becomes (delivery_id, attempt), built by 0013; the old
-- (tenant_id, delivery_id, attempt) index goes with its constraint. Every statement keeps
-- working: those that name the tenant too still find the row through the new key, and the
-- inserts' `on conflict do nothing` names no columns. (Versions before this one run unchanged
-- against it, which is what a rollback needs.)
--
-- This locks `delivery_attempts` against writes for a moment, as 0010 did: each try waits at
-- most 100 ms, so that the workers' writes never queue long behind it, and a wait that closes a
-- cycle with a worker's transaction ends at that timeout, before PostgreSQL's deadlock check
-- (1 s) could fail the worker's instead. After about a minute of tries it gives up without
-- changing anything.
do $$
begin
    perform set_config('lock_timeout', '100ms', true);
    for try in 1..50 loop
        begin
            lock table delivery_attempts in access exclusive mode;
            raise notice 'locked delivery_attempts at try %', try;
            return;
        exception when lock_not_available then
            perform pg_sleep(0.5 + random());
        end;
    end loop;
    raise exception 'could not lock delivery_attempts in 50 tries of 100 ms (about a minute); '
        'nothing was changed: run the migration again, at a quieter time if it repeats';
end
$$;

alter table delivery_attempts
    drop constraint delivery_attempts_pkey,
    add constraint delivery_attempts_pkey primary key using index delivery_attempts_delivery_id_attempt;
