#!/usr/bin/env bash
# Several bridges behind HAProxy against one bridge alone, in one run on one throwaway cluster
# (fsync on, the demo's views over 100,000 customers, durable audit): the support lookup at 50
# and at 500 concurrent agents over Streamable HTTP (each agent a 2025-11-25 session on its
# own keep-alive connection, kept on its bridge by HAProxy's stick table on MCP-Session-Id),
# with calls/s, latency, open database connections and the CPU time per call of each party
# (client, HAProxy, bridges, PostgreSQL) from /proc. On one machine this shows what the
# balancer and more bridges cost, not what more machines gain. Not a test: prints a table and
# writes bench/results/scale-out.txt.
#   bench/scale_out.sh [SECONDS_PER_CASE=10]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-10}
port=${PG_MCP_BENCH_PORT:-54343}
result_file=bench/results/scale-out.txt
mkdir -p "$(dirname "$result_file")"
jobs=$(nproc 2>/dev/null || echo 2)
command -v haproxy >/dev/null || { echo "bench/scale_out.sh needs haproxy (apt-get install haproxy)" >&2; exit 1; }

echo "== building pg_mcp_bridge and the benchmark client" >&2
cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/cmake -j"$jobs" --target pg_mcp_bridge mcp_bench_client >/dev/null
bridge=${PG_MCP_BENCH_BRIDGE:-$root/build/cmake/pg_mcp_bridge}
client=$root/build/cmake/mcp_bench_client

. bench/lib.sh
echo "== starting a throwaway cluster (fsync on) and loading 100,000 customers" >&2
bench_cluster "$port" on 127.0.0.1
export PGHOST=127.0.0.1
psql -q -c "ALTER SYSTEM SET max_connections = 200" >/dev/null
"$root/scripts/cluster.sh" stop "$bench_workdir" >/dev/null
eval "$(PG_MCP_CLUSTER_FSYNC=on PG_MCP_CLUSTER_LISTEN=127.0.0.1 "$root/scripts/cluster.sh" start "$bench_workdir" "$port")"
export PGHOST=127.0.0.1 PGPORT PGUSER
createdb bench
psql -q -v ON_ERROR_STOP=1 -v customers=100000 -d bench -f demo/demo.sql >/dev/null
psql -q -v ON_ERROR_STOP=1 -d bench -c "GRANT mcp_audit_confirmer TO agent_support" \
  -c 'VACUUM (FREEZE, ANALYZE)' -c CHECKPOINT >/dev/null
dsn="host=127.0.0.1 port=$port dbname=bench user=agent_support"
mcp_call='{"name":"get_customer_info","arguments":{"email":"customer{N}@example.com"}}'
field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
# CPU time (µs) of the processes so far.
cpu_us() {
  local total=0 pid hz
  local -a f
  hz=$(getconf CLK_TCK)
  for pid in "$@"; do
    read -r -a f < <(sed 's/^.*) //' "/proc/$pid/stat")
    total=$((total + f[11] + f[12]))
  done
  echo $((total * 1000000 / hz))
}
pids=()
stop_all() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; pids=(); }
trap 'stop_all; bench_cleanup' EXIT INT TERM

start_bridges() {  # COUNT FIRST_PORT POOL: bridges on FIRST_PORT, FIRST_PORT+1, ...
  local i
  bridge_pids=()
  for ((i = 0; i < $1; i++)); do
    "$bridge" --http "127.0.0.1:$(($2 + i))" --pool-size "$3" --log-level error \
      --max-connections 2000 --max-connections-per-address 2000 --max-sessions-per-address 2000 "$dsn" &
    pids+=($!)
    bridge_pids+=($!)
    wait_http $(($2 + i))
  done
}
start_haproxy() {  # PORT FIRST_BRIDGE_PORT COUNT
  local i config=$bench_scripts/haproxy.cfg
  cat >"$config" <<CFG
global
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 300s
  timeout server 300s
  timeout http-request 10s
  retries 3
  option redispatch
frontend mcp
  bind 127.0.0.1:$1
  maxconn 4000
  default_backend bridges
backend bridges
  balance roundrobin
  stick-table type binary len 20 size 100k expire 2h
  stick on req.hdr(mcp-session-id),sha1
  stick store-response res.hdr(mcp-session-id),sha1
CFG
  for ((i = 0; i < $3; i++)); do echo "  server b$i 127.0.0.1:$(($2 + i)) maxconn 2000" >>"$config"; done
  haproxy -db -f "$config" &
  pids+=($!)
  haproxy_pid=$!
  wait_http "$1"
}

rows=()
measure() {  # NAME AGENTS URL PIDS...: one case
  local name=$1 agents=$2 url=$3 before after out connections
  shift 3
  before=$(cpu_us "$@")
  lsn=$(psql -Atq -d bench -c "SELECT pg_current_wal_lsn()")
  out=$("$client" http --agents "$agents" --seconds "$seconds" --call "$mcp_call" --server-pid "$1" \
    --postmaster-pid "$(head -n 1 "$bench_workdir/data/postmaster.pid")" -- "$url")
  after=$(cpu_us "$@")
  wal=$(psql -Atq -d bench -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn')")
  connections=$(psql -Atq -d bench -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'agent_support'")
  local calls_per_s calls
  calls_per_s=$(field "$out" calls_per_s)
  calls=$(awk -v r="$calls_per_s" -v s="$seconds" 'BEGIN {printf "%d", r * s}')
  rows+=("$(printf '%-30s %6s %9s %8s %8s %6s %8s %8s %8s %7s' "$name" "$agents" "$calls_per_s" \
    "$(field "$out" p50_ms)" "$(field "$out" p99_ms)" "$connections" \
    "$(field "$out" cpu_client_us)" \
    "$(awk -v a="$before" -v b="$after" -v c="$calls" 'BEGIN {printf "%.0f", (b - a) / (c > 0 ? c : 1)}')" \
    "$(field "$out" cpu_pg_us)" "$(awk -v w="$wal" -v c="$calls" 'BEGIN {printf "%.0f", w / (c > 0 ? c : 1)}')")")
  echo "${rows[-1]}" >&2
}

bridge_port=$((port + 10))
lb_port=$((port + 5))
for agents in 50 500; do
  echo "== $agents agents: one bridge alone (pool 10)" >&2
  start_bridges 1 "$bridge_port" 10
  measure "one bridge, pool 10" "$agents" "http://127.0.0.1:$bridge_port/mcp" "${bridge_pids[@]}"
  stop_all
  echo "== $agents agents: HAProxy and one bridge (pool 10)" >&2
  start_bridges 1 "$bridge_port" 10
  start_haproxy "$lb_port" "$bridge_port" 1
  measure "HAProxy + 1 bridge, pool 10" "$agents" "http://127.0.0.1:$lb_port/mcp" "${bridge_pids[@]}" "$haproxy_pid"
  stop_all
  # Three bridges with the one bridge's connections between them, then with three times as many.
  for pool in 4 10; do
    echo "== $agents agents: HAProxy and three bridges (pool $pool each)" >&2
    start_bridges 3 "$bridge_port" "$pool"
    start_haproxy "$lb_port" "$bridge_port" 3
    measure "HAProxy + 3 bridges, pool $pool" "$agents" "http://127.0.0.1:$lb_port/mcp" "${bridge_pids[@]}" "$haproxy_pid"
    stop_all
  done
done

{
  echo "pg_mcp scale-out: $(date -u +%Y-%m-%dT%H:%MZ), $seconds s per case, $(nproc) cores, $(haproxy -v | head -n 1 | cut -d' ' -f1-3)"
  echo "Durable audit; CPU per call in µs (bridges+HAProxy: every bridge process and HAProxy);"
  echo "connections: the bridges' database connections after the case; wal_B: WAL bytes per call."
  printf '  %-30s %6s %9s %8s %8s %6s %8s %8s %8s %7s\n' case agents calls/s p50_ms p99_ms conns client bridges postgres wal_B
  for row in "${rows[@]}"; do echo "  $row"; done
} | tee "$result_file"
