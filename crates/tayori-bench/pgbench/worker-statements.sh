#!/usr/bin/env bash
# Where PostgreSQL's time goes while the worker drains a queue: one `tayori-bench --runs
# throughput` (the worker bench, see docs/benchmarks.md) on a throwaway cluster with
# pg_stat_statements (planning time tracked), then every statement's calls, rows, planning and
# execution time, and both per event. Needs the release build of the bench
# (`cargo build --release -p tayori-bench`); extra arguments go to the bench, e.g.
# `--max-in-flight 300` or `--events 50000`.
# Run from anywhere: crates/tayori-bench/pgbench/worker-statements.sh [bench arguments]
set -euo pipefail
cd "$(dirname "$0")/../../.."
TARGET="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tayori/target}"
BENCH="$TARGET/release/tayori-bench"
[ -x "$BENCH" ] || { echo "no $BENCH: cargo build --release -p tayori-bench first" >&2; exit 1; }
# shellcheck source=../../../scripts/lib/postgres.sh
. scripts/lib/postgres.sh
trap stop_pg EXIT
pg_start -c max_connections=300 -c shared_preload_libraries=pg_stat_statements \
  -c pg_stat_statements.track_planning=on >/dev/null
PSQL=("$PG_BIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
"${PSQL[@]}" -c "create extension pg_stat_statements"
export MIMALLOC_ARENA_EAGER_COMMIT="${MIMALLOC_ARENA_EAGER_COMMIT:-0}"
out=$("$BENCH" --database-url "$PG_URL" --templates templates --runs throughput "$@" 2>&1) \
  || { echo "$out" >&2; exit 1; }
echo "$out" | grep -E '^events: |^store writes|^CPU'
events=$(echo "$out" | sed -n 's/^events: \([0-9]*\) in .*/\1/p')
# The bench's own setup and checks (migrations, counts, drop database) are single calls.
"${PSQL[@]}" -P pager=off -c "
  select calls, rows,
         round(total_plan_time::numeric, 0) as plan_ms,
         round(total_exec_time::numeric, 0) as exec_ms,
         round((total_plan_time * 1000 / $events)::numeric, 1) as plan_us_per_event,
         round((total_exec_time * 1000 / $events)::numeric, 1) as exec_us_per_event,
         left(regexp_replace(query, '\s+', ' ', 'g'), 70) as statement
  from pg_stat_statements
  where calls > 10
  order by total_plan_time + total_exec_time desc"
