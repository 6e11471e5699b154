#!/usr/bin/env bash
# What the indexes on `deliveries` cost the event path's writes: two-waits.sql under pgbench on
# a throwaway cluster (scripts/lib/postgres.sh). Variants:
#   all                      every index of the migrations;
#   status-before-0006       the single status index of before 0006 (`processing` included)
#                            instead of the two partial ones;
#   delivery-id-before-0009  `unique (tenant_id, delivery_id)` for the foreign keys and
#                            `deliveries_delivery_id` for lookups, instead of one
#                            `unique (delivery_id)`;
#   no-global-three          without the three indexes that serve only cross-tenant or
#                            event-type searches of operators;
#   hot-outcome              without every index the outcome's update changes (the two status
#                            indexes, the provider message id's) and with free space in each
#                            page (fillfactor HOT_FILLFACTOR, default 80), so that the update
#                            can be HOT: the most a schema that kept the outcome out of indexed
#                            columns could save (operators' status search and feedback matching
#                            would have no index left).
# Each run: a fresh database, migrated, 3 s of warm-up, ANALYZE, 20 s measured. Prints
# transactions/s (ten events each), WAL bytes per event and the share of the updates of
# `deliveries` that were HOT (no index touched).
# Run from anywhere: crates/tayori-bench/pgbench/index-cost.sh [rounds]   (about 2 min a round)
# VARIANTS="all hot-outcome" picks some of the variants; CLIENTS (default 16) sets pgbench's
# concurrent clients (a worker's group commit has at most 2 write batches in flight).
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROUNDS="${1:-3}"
# shellcheck source=../../../scripts/lib/postgres.sh
. scripts/lib/postgres.sh
trap stop_pg EXIT
pg_start >/dev/null
PSQL=("$PG_BIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres)
PGBENCH=("$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared
  -c "${CLIENTS:-16}" -j 2)
SCRIPT=crates/tayori-bench/pgbench/two-waits.sql

drops() {
  case "$1" in
    all) ;;
    status-before-0006)
      echo "drop index deliveries_tenant_decided_created; drop index deliveries_processing;" \
        "create index deliveries_tenant_status_created" \
        "on deliveries (tenant_id, status, created_at desc, delivery_id desc);" ;;
    delivery-id-before-0009)
      echo "alter table delivery_attempts drop constraint delivery_attempts_delivery_id_fkey;" \
        "alter table delivery_feedback drop constraint delivery_feedback_delivery_id_fkey;" \
        "alter table deliveries drop constraint deliveries_delivery_id_key;" \
        "alter table deliveries add unique (tenant_id, delivery_id);" \
        "alter table delivery_attempts add foreign key (tenant_id, delivery_id)" \
        "references deliveries (tenant_id, delivery_id);" \
        "alter table delivery_feedback add foreign key (tenant_id, delivery_id)" \
        "references deliveries (tenant_id, delivery_id);" \
        "create index deliveries_delivery_id on deliveries (delivery_id);" ;;
    no-global-three)
      echo "drop index deliveries_created; drop index deliveries_recipient_created;" \
        "drop index deliveries_tenant_type_created;" ;;
    hot-outcome)
      echo "drop index deliveries_tenant_decided_created; drop index deliveries_processing;" \
        "drop index deliveries_provider_message_id;" \
        "alter table deliveries set (fillfactor = ${HOT_FILLFACTOR:-80});" ;;
  esac
}

scalar() { "${PSQL[@]}" -d idx -At -c "$1"; }
hot_and_all_updates() {
  scalar "select n_tup_hot_upd || ' ' || n_tup_upd from pg_stat_user_tables
    where relname = 'deliveries'"
}

for round in $(seq "$ROUNDS"); do
  all_variants="all status-before-0006 delivery-id-before-0009 no-global-three hot-outcome"
  for variant in ${VARIANTS:-$all_variants}; do
    "${PSQL[@]}" -d postgres -c "drop database if exists idx" -c "create database idx" 2>/dev/null
    for migration in migrations/postgres/*.sql; do "${PSQL[@]}" -d idx -f "$migration"; done
    sql=$(drops "$variant")
    if [ -n "$sql" ]; then "${PSQL[@]}" -d idx -c "$sql"; fi
    "${PGBENCH[@]}" -T 3 -f "$SCRIPT" idx >/dev/null 2>&1
    "${PSQL[@]}" -d idx -c "analyze"
    indexes=$(scalar "select count(*) from pg_indexes where tablename = 'deliveries'")
    wal_from=$(scalar "select pg_current_wal_lsn()")
    rows_from=$(scalar "select count(*) from deliveries")
    read -r hot_was updates_were <<<"$(hot_and_all_updates)"
    tps=$("${PGBENCH[@]}" -T 20 -f "$SCRIPT" idx 2>&1 | awk '/^tps/ {printf "%.0f", $3}')
    wal=$(scalar "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal_from')")
    rows=$(($(scalar "select count(*) from deliveries") - rows_from))
    sleep 1 # backends report their table counters at most once a second
    read -r hot updates <<<"$(hot_and_all_updates)"
    updated=$((updates > updates_were ? updates - updates_were : 1))
    echo "round $round, $variant ($indexes indexes on deliveries):" \
      "$tps transactions/s = $((tps * 10)) events/s, WAL $((${wal%.*} / rows)) bytes per event," \
      "HOT updates $(((hot - hot_was) * 100 / updated)) %"
  done
done
