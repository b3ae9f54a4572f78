#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests and the demo.
#   scripts/cluster.sh start DIR [PORT]   initdb (if needed) and start; prints the PG* settings
#   scripts/cluster.sh replica PRIMARY_DIR PRIMARY_PORT DIR PORT
#                                         a streaming hot standby of that cluster (pg_basebackup)
#   scripts/cluster.sh stop DIR [MODE]    stop (pg_ctl -m MODE: fast, or immediate) if running
# The cluster runs as an unprivileged user (PostgreSQL refuses root), listens on a unix socket
# inside DIR (and on TCP only where PG_MCP_CLUSTER_LISTEN names addresses, as the benchmarks'
# peers need), and is stopped by the caller (tests use a trap).
set -euo pipefail

PG_BIN=${PG_BIN:-$(pg_config --bindir)}
RUN_AS=${PG_MCP_CLUSTER_USER:-postgres}
# Tests and the demo run without fsync; benchmarks of durability set PG_MCP_CLUSTER_FSYNC=on.

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$RUN_AS" -- "$@"; else "$@"; fi
}

cmd=${1:?usage: cluster.sh start|stop DIR [PORT]}
dir=${2:?usage: cluster.sh start|stop DIR [PORT]}
port=${3:-54329}

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown "$RUN_AS" "$dir"; fi
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
      cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '${PG_MCP_CLUSTER_LISTEN:-}'
port = $port
unix_socket_directories = '$dir'
fsync = ${PG_MCP_CLUSTER_FSYNC:-off}
max_connections = 100
log_min_messages = warning
shared_preload_libraries = 'pg_mcp'
CONF
    fi
    chmod 755 "$dir"   # clients (root) reach the socket; data/ stays 700
    as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
    echo "export PGHOST='$dir' PGPORT=$port PGUSER=postgres"
    ;;
  replica)
    # cluster.sh replica PRIMARY_DIR PRIMARY_PORT DIR PORT
    primary_dir=$dir primary_port=$port
    dir=${4:?usage: cluster.sh replica PRIMARY_DIR PRIMARY_PORT DIR PORT}
    port=${5:?usage: cluster.sh replica PRIMARY_DIR PRIMARY_PORT DIR PORT}
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown "$RUN_AS" "$dir"; fi
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$PG_BIN/pg_basebackup" -h "$primary_dir" -p "$primary_port" -U postgres \
        -D "$dir/data" -R -X stream --checkpoint=fast --no-sync >"$dir/basebackup.log" 2>&1 ||
        { cat "$dir/basebackup.log" >&2; exit 1; }
      cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$dir'
hot_standby = on
CONF
    fi
    chmod 755 "$dir"
    as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
    echo "export PGHOST='$dir' PGPORT=$port PGUSER=postgres"
    ;;
  stop)
    # cluster.sh stop DIR [fast|immediate]
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m "${3:-fast}" -w stop >/dev/null || true
    fi
    ;;
  *) echo "unknown command: $cmd" >&2; exit 2 ;;
esac
