#!/usr/bin/env bash
# How fast `tayori prune` deletes, on a throwaway cluster (scripts/lib/postgres.sh, fsync on):
# a migrated database seeded with DELIVERIES deliveries (default 1,000,000), each with one send
# attempt, every second one with an SES feedback timeline row and its feedback message; half of
# them 400 days old, half 10 days. ANALYZE, then `tayori prune --keep-days 90` (BATCH_SIZE,
# default 1000) deletes the old half. Prints the time, deliveries per second, the WAL written,
# and the tables' sizes before and after.
# Run from anywhere: crates/tayori-bench/pgbench/prune.sh   (about 2 min for 1,000,000)
# WITHOUT_PRUNE_INDEXES=1 measures the schema of before migrations 0013-0016 (use a small
# DELIVERIES: every delete then reads the whole attempts and feedback tables).
# TAYORI_BIN picks the binary (default: the debug build, built if needed; the job is the
# database's work, not the binary's).
set -euo pipefail
cd "$(dirname "$0")/../../.."
DELIVERIES="${DELIVERIES:-1000000}"
BATCH_SIZE="${BATCH_SIZE:-1000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tayori/target}"
if [ -z "${TAYORI_BIN:-}" ]; then
  cargo build -q -p tayori
  TAYORI_BIN="$CARGO_TARGET_DIR/debug/tayori"
fi
# shellcheck source=../../../scripts/lib/postgres.sh
. scripts/lib/postgres.sh
trap stop_pg EXIT
pg_start >/dev/null
PSQL=("$PG_BIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres)
scalar() { "${PSQL[@]}" -d prune -At -c "$1"; }
"${PSQL[@]}" -d postgres -c "create database prune"
URL="${PG_URL%/*}/prune"
"$TAYORI_BIN" migrate --database-url "$URL" >/dev/null
if [ -n "${WITHOUT_PRUNE_INDEXES:-}" ]; then
  # The schema of before 0013-0016: the deletes' foreign-key checks find no index to walk.
  echo "without the indexes of 0013-0016"
  "${PSQL[@]}" -d prune -c "alter table delivery_attempts drop constraint delivery_attempts_pkey,
      add primary key (tenant_id, delivery_id, attempt);
    drop index delivery_feedback_delivery_id; drop index delivery_feedback_feedback_id;"
fi

echo "seeding $DELIVERIES deliveries ..."
"${PSQL[@]}" -d prune <<SQL
insert into deliveries (tenant_id, source, event_id, delivery_id, event_type, recipient, status,
    provider_message_id, subject, event_json, lease_owner, created_at, updated_at, decided_at)
select case when n % 2 = 0 then 'acme-invest' else 'acme-bank' end, 'core-banking', 'e-' || n,
    gen_random_uuid(), 'deposit.completed', 'user' || n || '@example.com', 'sent',
    'ses-' || n, 'Your deposit is complete',
    '{"specversion":"1.0","type":"deposit.completed","data":{"amount":"10000","name":"Taro"}}',
    null, t, t, t
from generate_series(1, $DELIVERIES) as n,
    lateral (select now() - case when n <= $DELIVERIES / 2 then interval '400 days'
                                 else interval '10 days' end
                        + n * interval '1 millisecond' as t) as at;
insert into delivery_attempts (tenant_id, delivery_id, attempt, started_at, finished_at, result, detail)
select tenant_id, delivery_id, 1, created_at, created_at, 'accepted', provider_message_id
from deliveries;
insert into feedback_events (feedback_id, result, kind, tenant_id, delivery_id, ses_message_id,
    body, received_at)
select 'sns:' || event_id, 'matched', 'delivery', tenant_id, delivery_id, provider_message_id,
    '{"eventType":"Delivery"}', created_at
from deliveries where right(event_id, 1) in ('0', '2', '4', '6', '8');
insert into delivery_feedback (tenant_id, delivery_id, feedback_id, kind, recipients, received_at,
    ses_event)
select tenant_id, delivery_id, feedback_id, kind, array['x@example.com'], received_at, '{}'
from feedback_events;
analyze;
SQL
sizes() {
  scalar "select string_agg(format('%s %s', c.relname,
              pg_size_pretty(pg_total_relation_size(c.oid))), ', ' order by c.relname)
          from pg_class c where c.relname in
              ('deliveries', 'delivery_attempts', 'delivery_feedback', 'feedback_events')"
}
echo "before: $(sizes)"
echo "rows: $(scalar "select count(*) from deliveries") deliveries," \
  "$(scalar "select count(*) from delivery_attempts") attempts," \
  "$(scalar "select count(*) from delivery_feedback") feedback rows"
wal_from=$(scalar "select pg_current_wal_lsn()")
start=$(date +%s.%N)
"$TAYORI_BIN" prune --database-url "$URL" --keep-days 90 --batch-size "$BATCH_SIZE"
end=$(date +%s.%N)
wal=$(scalar "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal_from')")
deleted=$((DELIVERIES / 2))
awk -v s="$start" -v e="$end" -v d="$deleted" -v w="${wal%.*}" 'BEGIN {
  printf "pruned %d deliveries in %.1f s: %.0f deliveries/s, WAL %.0f MiB (%.0f bytes per delivery)\n",
    d, e - s, d / (e - s), w / 1048576, w / d }'
echo "left: $(scalar "select count(*) from deliveries") deliveries," \
  "$(scalar "select count(*) from delivery_attempts") attempts," \
  "$(scalar "select count(*) from delivery_feedback") feedback rows"
echo "after (before vacuum): $(sizes)"
