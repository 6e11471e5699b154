# shellcheck shell=bash
# A throwaway PostgreSQL cluster from the system's binaries (installed with apt when missing),
# bound to 127.0.0.1 on a free port, with default durability (fsync on). Sourced by scripts/test
# and scripts/bench:
#
#   . scripts/lib/postgres.sh
#   trap stop_pg EXIT            # set before pg_start, so a failed start is cleaned up too
#   pg_start -c max_connections=300
#   # now: PG_BIN, PG_DIR, PG_PORT, PG_URL (the admin URL), run_pg
#
# pg_start's arguments are extra server options. stop_pg stops the cluster and deletes its
# directory; it does nothing when pg_start never ran.

# Runs a command as root (directly, or through sudo). A caller may define its own first.
if ! declare -F as_root >/dev/null; then
  as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
      echo "need root to run: $*" >&2; return 1; fi
  }
fi

find_pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

pg_start() {
  if ! PG_BIN=$(find_pg_bin); then
    echo "PostgreSQL server binaries not found; installing them with apt"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    PG_BIN=$(find_pg_bin)
  fi
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tayori-pg.XXXXXX")
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # initdb refuses to run as root: run the cluster as the unprivileged postgres user then.
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres: "$PG_DIR"
    run_pg() { su postgres -s /bin/sh -c "$*"; }
  else
    run_pg() { sh -c "$*"; }
  fi
  run_pg "'$PG_BIN/initdb' -D '$PG_DIR/data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; return 1; }
  run_pg "'$PG_BIN/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/server.log' -w -o \"-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_DIR $*\" start" >/dev/null ||
    { cat "$PG_DIR/server.log" >&2; return 1; }
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

stop_pg() {
  [ -n "${PG_DIR:-}" ] || return 0
  run_pg "'$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
