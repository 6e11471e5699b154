-- One event as PostgresStore writes it today (crates/tayori-postgres/src/store.rs): four
-- statements, each its own transaction (commit), for a first delivery that is sent.
-- Run: pgbench -n -M prepared -c 16 -j 2 -T 20 -f per-event.sql DB   (1 transaction = 1 event)
\set n random(1, 1000000000000)
insert into deliveries (tenant_id, source, event_id, delivery_id, event_type, recipient, status,
    claim_count, lease_owner, lease_expires_at, event_json, raw_body, raw_body_size, created_at,
    updated_at, receive_count)
  values ('acme-invest', 'acme-invest/pgbench', :n::text, md5(:n::text)::uuid,
    'account.deposit_completed', 'taro.yamada@example.com', 'processing', 1, 'pgbench',
    now() + interval '120 seconds', '{"specversion":"1.0","id":"x","source":"acme-invest/pgbench","type":"account.deposit_completed","time":"2026-11-27T10:00:00Z","tenant":"acme-invest","datacontenttype":"application/json","data":{"to":{"email":"taro.yamada@example.com","name":"山田 太郎","locale":"ja"},"variables":{"amount":50000,"currency":"JPY","deposited_at":"2026-11-27T09:58:00+09:00"}}}', null, null, now(), now(), 1)
  on conflict (tenant_id, source, event_id) do update
    set claim_count = deliveries.claim_count + 1, lease_owner = excluded.lease_owner,
        lease_expires_at = excluded.lease_expires_at, updated_at = excluded.updated_at,
        receive_count = excluded.receive_count
    where deliveries.status = 'processing' and deliveries.lease_expires_at <= excluded.updated_at
  returning claim_count;
insert into delivery_attempts (tenant_id, delivery_id, attempt, started_at)
  values ('acme-invest', md5(:n::text)::uuid, 1, now()) on conflict do nothing;
update delivery_attempts set finished_at = now(), result = 'accepted', detail = 'standin-0000000001'
  where tenant_id = 'acme-invest' and delivery_id = md5(:n::text)::uuid and attempt = 1;
update deliveries
  set status = 'sent', reason = null, provider_message_id = 'standin-0000000001',
      subject = coalesce('【Acme Invest】ご入金を確認しました', subject), lease_owner = null,
      lease_expires_at = null, decided_at = now(), updated_at = now()
  where tenant_id = 'acme-invest' and source = 'acme-invest/pgbench' and event_id = :n::text
    and status = 'processing';
