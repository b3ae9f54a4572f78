#!/usr/bin/env bash
# Cost of the query tool's parser guard per call, against the same lookup as a plain tool and
# as raw prepared SQL, in one run on a throwaway cluster. Not a test: it prints a table and
# writes it to bench/results/guard_cost.txt.
#   bench/guard_cost.sh [SECONDS_PER_CASE] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-10}
clients=${2:-1}

. bench/lib.sh
bench_start "${PG_MCP_BENCH_PORT:-54331}"
psql -q -v ON_ERROR_STOP=1 -d bench >/dev/null <<'SQL'
CREATE ROLE bench_agent LOGIN;
GRANT USAGE ON SCHEMA bench TO bench_agent;
GRANT SELECT ON bench.items TO bench_agent;
SELECT mcp.create_tool('lookup', 'SELECT id, name FROM bench.items WHERE id = :id', 'One item',
                       '[{"name": "id", "type": "integer"}]');
SELECT mcp.grant_tool('lookup', 'bench_agent');
SELECT mcp.grant_tool('query', 'bench_agent');
SQL

cat >"$bench_scripts/raw.sql" <<'SQL'
\set id random(1, 100000)
SELECT id, name FROM bench.items WHERE id = :id;
SQL
cat >"$bench_scripts/tool.sql" <<'SQL'
\set id random(1, 100000)
SELECT mcp.call_tool('lookup', jsonb_build_object('id', :id::int));
SQL
cat >"$bench_scripts/query.sql" <<'SQL'
\set id random(1, 100000)
SELECT mcp.call_tool('query', jsonb_build_object('sql', 'SELECT id, name FROM bench.items WHERE id = ' || :id::int));
SQL

run() { pgbench_run "$1" bench_agent "$clients" "$seconds"; }
read -r raw_tps raw_lat < <(run raw)
read -r tool_tps tool_lat < <(run tool)
read -r query_tps query_lat < <(run query)

mkdir -p bench/results
{
  echo "pg_mcp guard cost: ${seconds}s per case, ${clients} client(s), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
  printf '%-40s %10s %12s %12s\n' case "calls/s" "latency ms" "vs tool"
  printf '%-40s %10s %12s %12s\n' "raw prepared SELECT (libpq floor)" "$raw_tps" "$raw_lat" "-"
  printf '%-40s %10s %12s %12s\n' "call_tool: plain tool (cached plan)" "$tool_tps" "$tool_lat" "1.00"
  printf '%-40s %10s %12s %12s\n' "call_tool: query tool (guard + plan)" "$query_tps" "$query_lat" \
    "$(awk -v a="$query_lat" -v b="$tool_lat" 'BEGIN {printf "%.2f", a / b}')"
  echo "guard overhead per call: $(awk -v a="$query_lat" -v b="$tool_lat" 'BEGIN {printf "%.3f", a - b}') ms"
} | tee bench/results/guard_cost.txt
