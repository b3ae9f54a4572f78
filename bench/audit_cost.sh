#!/usr/bin/env bash
# What the audit trail costs per call, in one run on a throwaway cluster with fsync on:
# durable and fast audit modes with 1 and 8 concurrent callers, against the raw lookup and
# the "lookup + audit insert in the same transaction" floor, and the rate limiter's cost.
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
SQL
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

run() {  # script user clients [mode] -> "tps latency_ms"
  # The audit mode is a superuser setting: set it on the role, as a DBA would.
  if [ -n "${4:-}" ]; then psql -Atq -d bench -c "ALTER ROLE $2 SET pg_mcp.audit_mode = '$4'" >/dev/null; fi
  pgbench_run "$1" "$2" "$3" "$seconds"
}
declare -A tps lat
run raw bench_agent 1 >/dev/null  # warm-up, not reported
for case in "raw 1" "raw 8" "floor 1" "floor 8" "durable 1" "durable 8" "fast 1" "limited 1" "fast 8"; do
  set -- $case
  case $1 in
    raw|floor) read -r t l < <(run "$1" bench_agent "$2") ;;
    durable|fast) read -r t l < <(run tool bench_agent "$2" "$1") ;;
    limited) read -r t l < <(run tool bench_limited "$2" fast) ;;
  esac
  tps["$case"]=$t; lat["$case"]=$l
done
sleep 1  # let the writer drain the fast-mode queue
fast_rows=$(psql -Atq -d bench -c "SELECT count(*) FROM mcp.audit_log")
chain=$(psql -Atq -d bench -c "SELECT CASE WHEN verified THEN 'verified' ELSE 'BROKEN at id ' || first_bad_id END FROM mcp.verify_audit()")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
mkdir -p bench/results
{
  echo "pg_mcp audit cost: ${seconds}s per case, $(nproc) cores, fsync on, $(date -u +%Y-%m-%dT%H:%MZ); audit rows written: $fast_rows, hash chain $chain"
  printf '%-52s %8s %8s %11s %11s\n' case clients "calls/s" "latency ms" "vs floor"
  for case in "raw 1" "raw 8" "floor 1" "floor 8" "durable 1" "durable 8" "fast 1" "fast 8" "limited 1"; do
    set -- $case
    case $1 in
      raw) label="raw prepared lookup (no audit)"; base=${tps["raw $2"]} ;;
      floor) label="lookup + audit INSERT, one commit per call (floor)"; base=${tps["floor $2"]} ;;
      durable) label="call_tool, durable audit (group commit)"; base=${tps["floor $2"]} ;;
      fast) label="call_tool, fast audit (vs raw lookup)"; base=${tps["raw $2"]} ;;
      limited) label="call_tool, fast, with a rate limit (vs fast)"; base=${tps["fast 1"]} ;;
    esac
    printf '%-52s %8s %8s %11s %11s\n' "$label" "$2" "${tps[$case]}" "${lat[$case]}" "$(ratio "${tps[$case]}" "$base")"
  done
  echo "rate limiter cost per call: $(awk -v a="${lat["limited 1"]}" -v b="${lat["fast 1"]}" 'BEGIN {printf "%.3f", a - b}') ms (fast mode, where the WAL flush does not hide it)"
} | tee bench/results/audit_cost.txt
