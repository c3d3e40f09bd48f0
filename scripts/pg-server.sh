#!/usr/bin/env bash
# A throw-away PostgreSQL server for benchmarks and manual runs (the Swift tests start their own).
#
#   scripts/pg-server.sh start DIR PORT   initdb into DIR (once), start on 127.0.0.1:PORT, print the URL
#   scripts/pg-server.sh stop DIR         fast shutdown
#
# As root, every PostgreSQL command runs as the `postgres` user (the server refuses root). Logins
# over TCP need the password printed in the URL (scram-sha-256); fsync is off (a benchmark server).
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x "$bin/postgres" ]] || { echo "pg-server: no PostgreSQL under /usr/lib/postgresql (scripts/bootstrap.sh installs it)" >&2; exit 1; }
as_postgres() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
password=stitch-bench

case "${1:-}" in
start)
    dir=$2 port=$3
    mkdir -p "$dir"
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        printf '%s' "$password" >"$dir/pwfile"
        [[ $(id -u) -eq 0 ]] && chown -R postgres:postgres "$dir"
        as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            --pwfile="$dir/pwfile" -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c shared_buffers=256MB" start >/dev/null
    as_postgres "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -qAtc "SELECT 1" >/dev/null
    echo "postgresql://postgres:$password@127.0.0.1:$port/postgres?sslmode=disable"
    ;;
stop)
    as_postgres "$bin/pg_ctl" -D "$2/data" -m fast -w stop >/dev/null
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
