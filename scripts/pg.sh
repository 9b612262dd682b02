# Sourced by scripts/test and scripts/bench: start_postgres starts a throwaway PostgreSQL
# server (Debian's package, installed if missing; initdb/pg_ctl as the postgres user) on
# 127.0.0.1:${OPTSYNC_TEST_PGPORT:-55432}, stops it when the script exits, and sets PG_URL.

pg_bin() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

start_postgres() {
  local bin port data
  bin=$(pg_bin || true)
  if [ -z "$bin" ]; then
    echo "== installing PostgreSQL (Debian package)"
    if [ "$(id -u)" -ne 0 ]; then
      echo "PostgreSQL is not installed and this is not root: install the 'postgresql' package or set OPTSYNC_TEST_DATABASE_URL" >&2
      exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bin)
  fi
  port=${OPTSYNC_TEST_PGPORT:-55432}
  data=${TMPDIR:-/tmp}/optsync-test-pg-$port
  run_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  # A server left running by an earlier run on this port is stopped and started afresh.
  if [ -f "$data/postmaster.pid" ]; then
    run_pg "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data"
  mkdir -p "$data"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
  echo "== starting PostgreSQL ($bin) on 127.0.0.1:$port"
  run_pg "$bin/initdb" -D "$data" -A trust -U postgres --no-sync >/dev/null
  run_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
  # Expanded now: the function's locals are gone by the time the trap runs.
  trap "run_pg '$bin/pg_ctl' -D '$data' -m fast stop >/dev/null 2>&1 || true" EXIT
  PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

