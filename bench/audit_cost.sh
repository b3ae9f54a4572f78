#!/usr/bin/env bash
# What the audit trail costs per call, in one run on a throwaway cluster with fsync on:
# durable and fast audit modes with 1 and 8 concurrent callers, against the raw lookup and
# the "lookup + audit insert in the same transaction" floor, and the rate limiter's cost; the
# bridge's own statement (mcp.serve_call with a trace context), without and with a principal's
# token, fast and durable. Each case also gives the CPU time per call of PostgreSQL's backends and of
# the audit writer, from /proc over the case's run (not disturbed by how busy the cores are).
# Not a test: prints a table and writes bench/results/audit_cost.txt.
#   bench/audit_cost.sh [SECONDS_PER_CASE=8]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-8}

. bench/lib.sh
bench_start "${PG_MCP_BENCH_PORT:-54332}" on
psql -q -v ON_ERROR_STOP=1 -d bench >/dev/null <<'SQL'
-- The floor an application would write by hand: the lookup and an audit insert, one commit.
CREATE TABLE bench.plain_audit (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), who name DEFAULT current_user,
                                tool text, arguments jsonb, status text, rows int);
CREATE ROLE bench_agent LOGIN;
CREATE ROLE bench_limited LOGIN;
GRANT USAGE ON SCHEMA bench TO bench_agent, bench_limited;
GRANT SELECT ON bench.items TO bench_agent, bench_limited;
GRANT INSERT ON bench.plain_audit TO bench_agent;
GRANT USAGE ON SEQUENCE bench.plain_audit_id_seq TO bench_agent;
SELECT mcp.create_tool('lookup', 'SELECT id, name FROM bench.items WHERE id = :id', 'One item',
                       '[{"name": "id", "type": "integer"}]');
SELECT mcp.grant_tool('lookup', 'bench_agent');
SELECT mcp.grant_tool('lookup', 'bench_limited');
SELECT mcp.set_rate_limit('bench_limited', 'lookup', max_calls => 1000000000, per => '1 hour', max_concurrent => 1000);
ALTER ROLE bench_agent SET pg_mcp.audit_mode = 'durable';
-- The bridge's login acting as a principal (--auth token): the tool's grant is the principal's.
CREATE ROLE bench_bridge LOGIN NOINHERIT;
GRANT bench_agent TO bench_bridge;
SELECT mcp.create_principal('bench-principal', 'bench_agent');
SQL
bench_token=$(psql -Atq -v ON_ERROR_STOP=1 -d bench -c "SELECT mcp.create_token('bench-principal', 'audit_cost.sh')" | grep '^pgmcp_')
token_hash=$(printf '%s' "$bench_token" | sha256sum | cut -d' ' -f1)
# Settle the freshly loaded table (hint bits, visibility map, a checkpoint) so that the first
# case does not pay for the load, then warm up.
psql -q -d bench -c 'VACUUM (FREEZE, ANALYZE) bench.items' -c CHECKPOINT >/dev/null

cat >"$bench_scripts/raw.sql" <<'SQL'
\set id random(1, 100000)
SELECT id, name FROM bench.items WHERE id = :id;
SQL
cat >"$bench_scripts/floor.sql" <<'SQL'
\set id random(1, 100000)
BEGIN;
SELECT id, name FROM bench.items WHERE id = :id;
INSERT INTO bench.plain_audit (tool, arguments, status, rows) VALUES ('lookup', jsonb_build_object('id', :id::int), 'ok', 1);
COMMIT;
SQL
cat >"$bench_scripts/tool.sql" <<'SQL'
\set id random(1, 100000)
SELECT mcp.call_tool('lookup', jsonb_build_object('id', :id::int));
SQL
# The bridge's statement (bridge/statements.cpp), as it sends it for one call: mcp.serve_call
# with the trace context, without and with a principal's token.
cat >"$bench_scripts/bridge.sql" <<'SQL'
\set id random(1, 100000)
SELECT mcp.serve_call('lookup', jsonb_build_object('id', :id::int), 'bench', 'audit_cost/1', 'r1', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', NULL::bytea, NULL::jsonb, false);
SQL
cat >"$bench_scripts/bridge_token.sql" <<SQL
\\set id random(1, 100000)
SELECT mcp.serve_call('lookup', jsonb_build_object('id', :id::int), 'bench', 'audit_cost/1', 'r1', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', '\\x$token_hash'::bytea, NULL::jsonb, false);
SQL

run() {  # script user clients [mode] -> "tps latency_ms backends_us writer_us"
  # The audit mode is a superuser setting: set it on the role, as a DBA would.
  if [ -n "${4:-}" ]; then psql -Atq -d bench -c "ALTER ROLE $2 SET pg_mcp.audit_mode = '$4'" >/dev/null; fi
  local before after t l
  before=$(pg_cpu)
  read -r t l < <(pgbench_run "$1" "$2" "$3" "$seconds")
  after=$(pg_cpu)
  echo "$t $l $(cpu_per_call "$before" "$after" "$(awk -v t="$t" -v s="$seconds" 'BEGIN {printf "%d", t * s}')")"
}
cases=("raw 1" "raw 8" "floor 1" "floor 8" "durable 1" "durable 8" "fast 1" "fast 8" "limited 1"
       "bridge 1" "bridge 8" "token 1" "token 8" "token_durable 1" "token_durable 8")
declare -A tps lat cpu_backend cpu_writer
run raw bench_agent 1 >/dev/null  # warm-up, not reported
for case in "${cases[@]}"; do
  set -- $case
  case $1 in
    raw|floor) read -r t l b w < <(run "$1" bench_agent "$2") ;;
    durable|fast) read -r t l b w < <(run tool bench_agent "$2" "$1") ;;
    limited) read -r t l b w < <(run tool bench_limited "$2" fast) ;;
    bridge) read -r t l b w < <(run bridge bench_agent "$2" fast) ;;
    token) read -r t l b w < <(run bridge_token bench_bridge "$2" fast) ;;
    token_durable) read -r t l b w < <(run bridge_token bench_bridge "$2" durable) ;;
  esac
  tps["$case"]=$t; lat["$case"]=$l; cpu_backend["$case"]=$b; cpu_writer["$case"]=$w
done
sleep 1  # let the writer drain the fast-mode queue
fast_rows=$(psql -Atq -d bench -c "SELECT count(*) FROM mcp.audit_log")
chain=$(psql -Atq -d bench -c "SELECT CASE WHEN verified THEN 'verified' ELSE 'BROKEN at id ' || first_bad_id END FROM mcp.verify_audit()")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
mkdir -p bench/results
{
  echo "pg_mcp audit cost: ${seconds}s per case, $(nproc) cores, fsync on, $(date -u +%Y-%m-%dT%H:%MZ); audit rows written: $fast_rows, hash chain $chain"
  printf '%-52s %8s %8s %11s %11s %11s %10s\n' case clients "calls/s" "latency ms" "vs floor" \
    "backend µs" "writer µs"
  for case in "${cases[@]}"; do
    set -- $case
    case $1 in
      raw) label="raw prepared lookup (no audit)"; base=${tps["raw $2"]} ;;
      floor) label="lookup + audit INSERT, one commit per call (floor)"; base=${tps["floor $2"]} ;;
      durable) label="call_tool, durable audit (group commit)"; base=${tps["floor $2"]} ;;
      fast) label="call_tool, fast audit (vs raw lookup)"; base=${tps["raw $2"]} ;;
      limited) label="call_tool, fast, with a rate limit (vs fast)"; base=${tps["fast 1"]} ;;
      bridge) label="the bridge's statement, fast (vs raw lookup)"; base=${tps["raw $2"]} ;;
      token) label="the bridge's statement with a token, fast (vs raw)"; base=${tps["raw $2"]} ;;
      token_durable) label="... with a token, durable (vs floor)"; base=${tps["floor $2"]} ;;
    esac
    printf '%-52s %8s %8s %11s %11s %11s %10s\n' "$label" "$2" "${tps[$case]}" "${lat[$case]}" \
      "$(ratio "${tps[$case]}" "$base")" "${cpu_backend[$case]}" "${cpu_writer[$case]}"
  done
  echo "rate limiter cost per call: $(awk -v a="${lat["limited 1"]}" -v b="${lat["fast 1"]}" 'BEGIN {printf "%.3f", a - b}') ms (fast mode, where the WAL flush does not hide it)"
} | tee bench/results/audit_cost.txt
