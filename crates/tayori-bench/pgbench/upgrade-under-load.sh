#!/usr/bin/env bash
# Applies the PostgreSQL migrations after a given one while pgbench writes what the workers write
# (two-waits.sql), as a rolling upgrade does: the older workers keep writing while the migration
# Job runs. Prints how long each migration took, its NOTICEs (0010 says at which try it got its
# locks), pgbench's failed transactions and latency, and the deadlocks in the server's log.
# A throwaway cluster (scripts/lib/postgres.sh); the database is migrated up to FROM, loaded for
# 5 s and analyzed (a production database has statistics) before the load starts.
# Usage: crates/tayori-bench/pgbench/upgrade-under-load.sh FROM [CLIENTS] [RATE] [SECONDS]
#   FROM     the last migration applied before the upgrade, e.g. 0008
#   CLIENTS  pgbench clients (default 16)
#   RATE     transactions/s to offer (10 events each); empty: as fast as the cluster goes
#   SECONDS  how long the load runs (default 30; the migrations start 3 s in)
set -euo pipefail
cd "$(dirname "$0")/../../.."
FROM="${1:?usage: $0 FROM [CLIENTS] [RATE] [SECONDS], e.g. $0 0008 16 250 30}"
CLIENTS="${2:-16}"
RATE="${3:-}"
SECONDS_OF_LOAD="${4:-30}"
# shellcheck source=../../../scripts/lib/postgres.sh
. scripts/lib/postgres.sh
trap stop_pg EXIT
pg_start >/dev/null
PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d up)
PGBENCH=("$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n
  -f crates/tayori-bench/pgbench/two-waits.sql)
"$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "create database up"

apply() {
  # sqlx runs a migration in one transaction unless its first line says otherwise.
  if head -n 1 "$1" | grep -q '^-- no-transaction'; then
    "${PSQL[@]}" -f "$1"
  else
    "${PSQL[@]}" -1 -f "$1"
  fi
}

before=() after=()
for migration in migrations/postgres/*.sql; do
  # "0008_x.sql" < "0008~" (the tilde sorts after every character of a file name).
  if [[ "$(basename "$migration")" < "$FROM~" ]]; then
    before+=("$migration")
  else
    after+=("$migration")
  fi
done
[ "${#after[@]}" -gt 0 ] || { echo "no migration after $FROM" >&2; exit 1; }
for migration in "${before[@]}"; do apply "$migration"; done
"${PGBENCH[@]}" -c 4 -T 5 up >/dev/null 2>&1
"${PSQL[@]}" -c analyze
count=$("${PSQL[@]}" -At -c "select count(*) from deliveries")
echo "up to $FROM applied, $count deliveries; load: $CLIENTS clients," \
  "${RATE:-unlimited} transactions/s (10 events each), $SECONDS_OF_LOAD s"

"${PGBENCH[@]}" -c "$CLIENTS" -j 2 -T "$SECONDS_OF_LOAD" ${RATE:+-R "$RATE"} up \
  >"$PG_DIR/pgbench.out" 2>&1 &
load=$!
sleep 3
for migration in "${after[@]}"; do
  started=$(date +%s%N)
  status=ok
  apply "$migration" 2>&1 | sed 's/^/  /' || status=FAILED
  echo "$migration: $status in $(( ($(date +%s%N) - started) / 1000000 )) ms"
done
wait "$load" || true
grep -E '^(tps|latency average|number of failed)' "$PG_DIR/pgbench.out"
echo "deadlocks in the server log: $(grep -c 'deadlock detected' "$PG_DIR/server.log" || true)"
