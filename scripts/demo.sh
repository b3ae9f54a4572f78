#!/usr/bin/env bash
# Builds and installs pg_mcp, starts a throwaway local PostgreSQL cluster, loads the demo data
# and tools, and opens psql on it (or runs the given command with PGHOST/PGPORT set).
# The cluster is stopped and removed when psql (or the command) exits.
#   scripts/demo.sh                 interactive psql on the demo database
#   scripts/demo.sh -- CMD ARGS...  run CMD against the demo cluster instead
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

make -s -j"$(nproc 2>/dev/null || echo 2)"
make -s install

workdir=$(mktemp -d /tmp/pg_mcp_demo.XXXXXX)
port=${PG_MCP_DEMO_PORT:-54330}
cleanup() { "$root/scripts/cluster.sh" stop "$workdir" || true; rm -rf "$workdir"; }
trap cleanup EXIT INT TERM

eval "$("$root/scripts/cluster.sh" start "$workdir" "$port")"
export PGHOST PGPORT PGUSER PGDATABASE=pg_mcp_demo
createdb pg_mcp_demo
psql -q -v ON_ERROR_STOP=1 -f "$root/demo/demo.sql" >/dev/null

echo "pg_mcp demo: database pg_mcp_demo on socket $PGHOST port $PGPORT (stopped when you exit)."
if [ "${1:-}" = "--" ]; then
  shift
  "$@"
else
  psql
fi
