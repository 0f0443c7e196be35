#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server for the tests: loopback only, trust auth, its own
# data directory and port; OPINIONS_TEST_PG_URL is exported for the command and the server is stopped
# afterwards. Installs Debian's package when missing and root. If no server can be started, the command
# runs anyway and the PostgreSQL tests skip with a visible reason.
set -u
PORT=${PGPORT_TEST:-54329}
start() {
  if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || return 1
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 || return 1
  fi
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  DATA=$(mktemp -d /tmp/opinions-pg.XXXXXX)
  RUNAS=""
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd -r postgres >/dev/null 2>&1
    chown postgres "$DATA"
    RUNAS="runuser -u postgres --"
  fi
  $RUNAS "$PGBIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null 2>&1 || return 1
  $RUNAS "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 || return 1
  export OPINIONS_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
  trap '$RUNAS "$PGBIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1; rm -rf "$DATA"' EXIT
  echo "test PostgreSQL server on 127.0.0.1:$PORT"
}
if [ -z "${OPINIONS_TEST_PG_URL:-}" ]; then
  start || echo "no PostgreSQL server could be started: the PostgreSQL tests will skip"
fi
"$@"
