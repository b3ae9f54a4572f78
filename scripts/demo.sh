#!/usr/bin/env bash
# A live pg_mcp on a fresh Debian 12 machine, from a clone: installs what is missing, builds the
# extension and the bridge, starts a throwaway PostgreSQL with the demo data and tools, serves
# MCP over Streamable HTTP on the loopback with demo tokens, prints ready-to-paste client
# configurations, runs a short scripted agent session, and serves until Ctrl-C. The cluster (in
# $PG_MCP_DEMO_DIR, default /tmp/pg_mcp_demo) is stopped and removed on exit. A directory this
# script did not make, or a demo still running there, is never removed: a second demo runs
# beside it with another PG_MCP_DEMO_DIR, PG_MCP_DEMO_PORT and PG_MCP_DEMO_HTTP_PORT.
#   scripts/demo.sh                 the MCP server (HTTP on ${PG_MCP_DEMO_HTTP_ADDRESS:-127.0.0.1}:${PG_MCP_DEMO_HTTP_PORT:-8765})
#   scripts/demo.sh psql            psql on the demo database instead
#   scripts/demo.sh -- CMD ARGS...  run CMD against the demo cluster (PGHOST, PGPORT set)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-serve}

scripts/deps.sh demo
# Node.js 20 from the npm registry when the system's is older (scripts/deps.sh).
[ -x build/node/bin/node ] && export PATH="$PWD/build/node/bin:$PATH"
jobs=$(nproc 2>/dev/null || echo 2)
echo "== build and install the extension; build the bridge"
# PostgreSQL 15 (Debian 12's) unless PG_MCP_DEMO_PG names another (scripts/pg_server.sh).
pg_bin=$(scripts/build_extension.sh "${PG_MCP_DEMO_PG:-15}")
export PATH="$pg_bin:$PATH" PG_BIN=$pg_bin
cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/cmake -j"$jobs" --target pg_mcp_bridge >/dev/null
bridge=$root/build/cmake/pg_mcp_bridge

workdir=${PG_MCP_DEMO_DIR:-/tmp/pg_mcp_demo}
port=${PG_MCP_DEMO_PORT:-54330}
http_port=${PG_MCP_DEMO_HTTP_PORT:-8765}
# 0.0.0.0 in the try-it image (deploy/Containerfile.try), to be reached from outside it.
http_address=${PG_MCP_DEMO_HTTP_ADDRESS:-127.0.0.1}
marker=$workdir/.made-by-pg_mcp-demo
if [ -e "$workdir" ]; then
  if [ ! -f "$marker" ]; then
    echo "scripts/demo.sh: $workdir exists and was not made by this script; it is left alone." >&2
    echo "Run the demo elsewhere: PG_MCP_DEMO_DIR=/tmp/my_demo scripts/demo.sh" >&2
    exit 1
  fi
  if [ -f "$workdir/data/postmaster.pid" ] &&
     kill -0 "$(head -n 1 "$workdir/data/postmaster.pid")" 2>/dev/null; then
    echo "scripts/demo.sh: a demo is running in $workdir. Stop it (Ctrl-C), or run another beside it:" >&2
    echo "  PG_MCP_DEMO_DIR=/tmp/demo2 PG_MCP_DEMO_PORT=54340 PG_MCP_DEMO_HTTP_PORT=8766 scripts/demo.sh" >&2
    exit 1
  fi
  rm -rf "$workdir"  # what an interrupted demo left
fi
mkdir -p "$workdir"
touch "$marker"
bridge_pid=
cleanup() {
  [ -n "$bridge_pid" ] && kill "$bridge_pid" 2>/dev/null && wait "$bridge_pid" 2>/dev/null
  "$root/scripts/cluster.sh" stop "$workdir" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== start PostgreSQL in $workdir and load the demo (demo/demo.sql)"
eval "$("$root/scripts/cluster.sh" start "$workdir" "$port")"
export PGHOST PGPORT PGUSER PGDATABASE=pg_mcp_demo
createdb pg_mcp_demo
psql -X -q -v ON_ERROR_STOP=1 -f "$root/demo/demo.sql" >/dev/null

case "$mode" in
  psql) psql; exit ;;
  --) shift; "$@"; exit ;;
esac

# The bridge's login: NOINHERIT, a member of the agent roles it serves; agents present tokens
# of principals (stored hashed in mcp.principal_tokens), never a database password.
tokens=$(psql -X -Atq -v ON_ERROR_STOP=1 <<'SQL'
CREATE ROLE mcp_bridge_demo LOGIN NOINHERIT;
GRANT agent_support, agent_acme, agent_billing, mcp_audit_confirmer, mcp_confirmation_relay TO mcp_bridge_demo;
SELECT mcp.create_principal('support-demo', 'agent_support') IS NULL;
SELECT mcp.create_token('support-demo', 'scripts/demo.sh');
SELECT mcp.create_token('acme-support', 'scripts/demo.sh');
SELECT mcp.create_token('billing-demo', 'scripts/demo.sh');
SQL
)
support_token=$(echo "$tokens" | sed -n 2p)
acme_token=$(echo "$tokens" | sed -n 3p)
billing_token=$(echo "$tokens" | sed -n 4p)

echo "== start pg_mcp_bridge on http://127.0.0.1:$http_port/mcp (bearer tokens)"
"$bridge" --http "$http_address:$http_port" --auth token --pool-size 4 \
  "host=$PGHOST port=$PGPORT dbname=pg_mcp_demo user=mcp_bridge_demo" 2> "$workdir/bridge.log" &
bridge_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
  kill -0 "$bridge_pid" 2>/dev/null || { cat "$workdir/bridge.log"; exit 1; }
  sleep 0.1
done

url="http://127.0.0.1:$http_port/mcp"
cat <<EOT

pg_mcp is serving MCP at $url
Two demo agents (tokens valid while the demo runs):
  support agent (tool get_customer_info):          $support_token
  tenant agent acme (tool get_tenant_customers):   $acme_token
  billing agent (cancel_subscription, confirmed):  $billing_token

Claude Code:
  claude mcp add --transport http pg-mcp $url --header "Authorization: Bearer $support_token"

VS Code (.vscode/mcp.json):
  {"servers": {"pg-mcp": {"type": "http", "url": "$url",
                          "headers": {"Authorization": "Bearer $support_token"}}}}

Cursor (~/.cursor/mcp.json):
  {"mcpServers": {"pg-mcp": {"url": "$url", "headers": {"Authorization": "Bearer $support_token"}}}}

Claude Desktop (claude_desktop_config.json; stdio, the bridge started by the client):
  {"mcpServers": {"pg-mcp": {"command": "$bridge",
                             "args": ["host=$PGHOST port=$PGPORT dbname=pg_mcp_demo user=agent_support"]}}}

MCP Inspector:
  npx @modelcontextprotocol/inspector   (Transport: Streamable HTTP, URL $url,
                                         header Authorization: Bearer $support_token)
EOT

if [ -d test/sdk/node_modules ] || (cd test/sdk && npm ci --no-audit --no-fund >/dev/null 2>&1); then
  echo
  echo "== a scripted agent session (the official MCP SDK, test/sdk/agent-session.mjs)"
  (cd test/sdk && node agent-session.mjs "$url" "$acme_token" get_tenant_customers \
     '{"plan_name": "pro"}') || true
  echo
  echo "== its audit row (mcp.audit_log, written outside the agent's transaction):"
  psql -X -q -c "SELECT id, called_at::time(0) AS at, principal, caller_role, tool_name, status,
                        rows_returned, arguments FROM mcp.audit_log ORDER BY id DESC LIMIT 1"
  echo
  echo "== a writing tool a person confirms: the client asks (elicitation), the person approves"
  (cd test/sdk && node agent-session.mjs "$url" "$billing_token" cancel_subscription \
     '{"customer_id": 3}') || true
  echo
  echo "== its audit rows: asked, then approved and run"
  psql -X -q -c "SELECT id, tool_name, status, confirmation ->> 'decision' AS decision,
                        confirmation ->> 'message' AS shown, rows_returned
                   FROM mcp.audit_log WHERE tool_name = 'cancel_subscription' ORDER BY id"
fi
echo "Serving until Ctrl-C (bridge log: $workdir/bridge.log)."
wait "$bridge_pid"
