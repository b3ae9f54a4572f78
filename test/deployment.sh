#!/usr/bin/env bash
# Production topology on loopback, around the test cluster that scripts/test.sh started
# (PGHOST/PGPORT): a streaming hot standby of it (pg_basebackup), PgBouncer in transaction
# pooling mode in front of it, and the HTTP bridge between them and the official SDK client
# (test/sdk/deployment.test.mjs); then several bridges behind HAProxy (scale-out.test.mjs).
# Usage: test/deployment.sh WORKDIR PRIMARY_PORT
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
workdir=${1:?usage: deployment.sh WORKDIR PRIMARY_PORT}
primary_port=${2:?usage: deployment.sh WORKDIR PRIMARY_PORT}
replica_port=$((primary_port + 1))
bouncer_port=$((primary_port + 2))
RUN_AS=${PG_MCP_CLUSTER_USER:-postgres}
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$RUN_AS" -- "$@"; else "$@"; fi
}

bouncer=$workdir/bouncer
cleanup() {
  status=$?
  if [ -f "$bouncer/pgbouncer.pid" ]; then kill "$(cat "$bouncer/pgbouncer.pid")" 2>/dev/null || true; fi
  "$root/scripts/cluster.sh" stop "$workdir/replica" || true
  if [ $status -ne 0 ]; then
    for log in "$workdir/replica/server.log" "$bouncer/pgbouncer.log"; do
      [ -f "$log" ] && { echo "== $log (last 30 lines)"; tail -n 30 "$log"; }
    done
  fi
  exit $status
}
trap cleanup EXIT INT TERM

echo "-- a hot standby (pg_basebackup) on port $replica_port"
"$root/scripts/cluster.sh" replica "$PGHOST" "$primary_port" "$workdir/replica" "$replica_port" >/dev/null

echo "-- PgBouncer (transaction pooling) on port $bouncer_port"
mkdir -p "$bouncer"
cat >"$bouncer/users.txt" <<USERS
"deploy_bridge" ""
"scale_bridge" ""
"scale_bridge_b3" ""
"postgres" ""
USERS
cat >"$bouncer/pgbouncer.ini" <<INI
[databases]
* = host=$PGHOST port=$primary_port
[pgbouncer]
listen_addr =
listen_port = $bouncer_port
unix_socket_dir = $bouncer
auth_type = trust
auth_file = $bouncer/users.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 500
server_reset_query =
server_login_retry = 1
logfile = $bouncer/pgbouncer.log
pidfile = $bouncer/pgbouncer.pid
INI
if [ "$(id -u)" = 0 ]; then chown -R "$RUN_AS" "$bouncer"; fi
as_owner pgbouncer -d -q "$bouncer/pgbouncer.ini"
for _ in $(seq 50); do [ -S "$bouncer/.s.PGSQL.$bouncer_port" ] && break; sleep 0.1; done

export PG_MCP_DEPLOY_REPLICA_HOST=$workdir/replica PG_MCP_DEPLOY_REPLICA_PORT=$replica_port
export PG_MCP_DEPLOY_BOUNCER_HOST=$bouncer PG_MCP_DEPLOY_BOUNCER_PORT=$bouncer_port
export PG_MCP_DEPLOY_PRIMARY_DIR=$PGHOST PG_MCP_DEPLOY_PRIMARY_PORT=$primary_port
export PG_MCP_DEPLOY_WORKDIR=$workdir PG_MCP_DEPLOY_CLUSTER_SH=$root/scripts/cluster.sh
(cd "$root/test/sdk" && node --test --test-concurrency=1 --test-reporter=spec ${PG_MCP_DEPLOY_TESTS:-deployment.test.mjs scale-out.test.mjs})
