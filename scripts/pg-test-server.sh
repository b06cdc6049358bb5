#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the PostgreSQL tests.
#   scripts/pg-test-server.sh start   -> installs Debian's postgresql if missing, starts a fresh
#                                        cluster in a temp dir, prints its SQLAlchemy URL
#   scripts/pg-test-server.sh stop    -> stops it and removes the cluster
# The cluster lives in $CV_PG_TEST_DIR (default /tmp/customs-vision-pgtest) and listens only on
# 127.0.0.1 on a free port. As root it runs the server as the 'postgres' user (initdb refuses root).
set -euo pipefail
dir=${CV_PG_TEST_DIR:-/tmp/customs-vision-pgtest}

# The newest server install (a client-only install has psql but no initdb there).
pgbin() {
  local f
  f=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
  [ -n "$f" ] && dirname "$f"
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    if [ -z "$(pgbin)" ]; then
      if [ "$(id -u)" -ne 0 ]; then echo "install Debian's postgresql package" >&2; exit 1; fi
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    fi
    bin=$(pgbin)
    [ -d "$dir" ] && "$0" stop >/dev/null 2>&1 || true
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U cv --auth=trust -E UTF8 >/dev/null
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U cv cv_test
    echo "$port" > "$dir/port"
    echo "postgresql+psycopg://cv@127.0.0.1:$port/cv_test"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_owner "$(pgbin)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
