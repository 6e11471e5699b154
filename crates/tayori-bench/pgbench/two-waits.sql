-- What the PostgreSQL store writes for ten sent events since 2026-12-04 (two waits per event):
-- the claims with their first attempt rows in one transaction, then the attempt results and the
-- outcomes in another. (The group commit batches whatever is queued, about 23 writes in the
-- bench; ten events stand in for that.) Used to measure what the indexes on `deliveries` cost:
-- docs/benchmarks.md, "What the indexes on deliveries cost".
-- Run: pgbench -n -M prepared -c 16 -j 2 -T 20 -f two-waits.sql DB   (1 transaction = 10 events)
\set n random(1, 100000000000)
begin;
insert into deliveries (tenant_id, source, event_id, delivery_id, event_type, recipient, status,
    claim_count, lease_owner, lease_expires_at, event_json, raw_body, raw_body_size, created_at,
    updated_at, receive_count)
  select 'acme-invest', 'acme-invest/pgbench-two-waits', (:n::bigint * 10 + i)::text,
    md5((:n::bigint * 10 + i)::text)::uuid, 'account.deposit_completed', 'taro.yamada@example.com',
    'processing', 1, 'pgbench', now() + interval '120 seconds', '{"specversion":"1.0","id":"x","source":"acme-invest/pgbench","type":"account.deposit_completed","time":"2026-11-27T10:00:00Z","tenant":"acme-invest","datacontenttype":"application/json","data":{"to":{"email":"taro.yamada@example.com","name":"山田 太郎","locale":"ja"},"variables":{"amount":50000,"currency":"JPY","deposited_at":"2026-11-27T09:58:00+09:00"}}}', null, null, now(), now(), 1
  from generate_series(0, 9) as i
  on conflict (tenant_id, source, event_id) do update
    set claim_count = deliveries.claim_count + 1, lease_owner = excluded.lease_owner,
        lease_expires_at = excluded.lease_expires_at, updated_at = excluded.updated_at,
        receive_count = excluded.receive_count
    where deliveries.status = 'processing' and deliveries.lease_expires_at <= excluded.updated_at
  returning event_id, claim_count;
insert into delivery_attempts (tenant_id, delivery_id, attempt, started_at)
  select 'acme-invest', md5((:n::bigint * 10 + i)::text)::uuid, 1, now() from generate_series(0, 9) as i
  on conflict do nothing;
commit;
begin;
update delivery_attempts set finished_at = now(), result = 'accepted', detail = 'standin-0000000001'
  where tenant_id = 'acme-invest' and attempt = 1
    and delivery_id = any (array(select md5((:n::bigint * 10 + i)::text)::uuid
                               from generate_series(0, 9) as i));
update deliveries
  set status = 'sent', reason = null, provider_message_id = 'standin-0000000001',
      subject = coalesce('【Acme Invest】ご入金を確認しました', subject), lease_owner = null,
      lease_expires_at = null, decided_at = now(), updated_at = now()
  where tenant_id = 'acme-invest' and source = 'acme-invest/pgbench-two-waits'
    and event_id = any (array(select (:n::bigint * 10 + i)::text from generate_series(0, 9) as i))
    and status = 'processing';
commit;
