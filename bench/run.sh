#!/usr/bin/env bash
# The pg_mcp benchmark, in one run on a throwaway cluster (fsync on) with the demo's views over
# 1,000,000 customers: the same point lookup by email
#   - as floors over libpq (pgbench, prepared): A, the lookup alone; B, the lookup and an audit
#     insert committed durably in one round trip (a plain SQL function doing both);
#   - through pg_mcp_bridge over stdio (durable and fast audit), with a minimal client
#     (bench/mcp_client.cpp), 1 agent and 8 concurrent agents; tools/list; cold start to the
#     initialize result; the bridge's memory for a 10-row and a 100,000-row result;
#   - through the other PostgreSQL MCP servers that install from npm (bench/peers, pinned).
# Not a test: prints a table and writes bench/results/run.txt. See bench/README.md.
#   bench/run.sh [SECONDS_PER_CASE=10]
#   PG_MCP_BENCH_ONLY=http bench/run.sh ...: only the 50-agent HTTP table (pg_mcp and Toolbox).
#   PG_MCP_BENCH_PG=18 bench/run.sh ...: on another server version (scripts/pg_server.sh);
#   the result file then names it (run-18.txt, run-http-18.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-10}
port=${PG_MCP_BENCH_PORT:-54333}
result_file=bench/results/run.txt
only=${PG_MCP_BENCH_ONLY:-}
[ -z "$only" ] || result_file=bench/results/run-$only.txt
[ "${PG_MCP_BENCH_PG:-15}" = 15 ] || result_file=${result_file%.txt}-$PG_MCP_BENCH_PG.txt
mkdir -p "$(dirname "$result_file")"
jobs=$(nproc 2>/dev/null || echo 2)

echo "== building pg_mcp_bridge and the benchmark client" >&2
cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/cmake -j"$jobs" --target pg_mcp_bridge mcp_bench_client >/dev/null
# PG_MCP_BENCH_BRIDGE: another build of the bridge to measure (e.g. an older commit's).
bridge=${PG_MCP_BENCH_BRIDGE:-$root/build/cmake/pg_mcp_bridge}
client=$root/build/cmake/mcp_bench_client
echo "== installing the peers (bench/peers/package-lock.json)" >&2
(cd bench/peers && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
peers=$root/bench/peers/node_modules

. bench/lib.sh
echo "== starting a throwaway cluster (fsync on) and loading 1,000,000 customers" >&2
bench_cluster "$port" on 127.0.0.1
# Everything, floors included, reaches the server the same way: TCP on the loopback.
export PGHOST=127.0.0.1
createdb bench
psql -q -v ON_ERROR_STOP=1 -v customers=1000000 -d bench -f demo/demo.sql >/dev/null
psql -q -v ON_ERROR_STOP=1 -d bench >/dev/null <<'SQL'
-- Floor B: what an application writes by hand, the lookup and an audit row in one function.
CREATE SCHEMA bench;
CREATE TABLE bench.plain_audit (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(),
                                who name NOT NULL DEFAULT current_user, tool text NOT NULL,
                                arguments jsonb NOT NULL, status text NOT NULL);
CREATE FUNCTION bench.lookup_audited(p_email text)
    RETURNS TABLE (id int, name text, email text, plan_name text, subscription_status text,
                   last_login_date date, active_users_30d int, open_tickets_count int)
    LANGUAGE sql AS $$
    INSERT INTO bench.plain_audit (tool, arguments, status)
        VALUES ('get_customer_info', jsonb_build_object('email', p_email), 'ok');
    SELECT id, name, email, plan_name, subscription_status, last_login_date, active_users_30d,
           open_tickets_count
      FROM app.customer_support_view WHERE email = p_email LIMIT 1;
$$;
-- The floors' role and the peers' role read what the support tool's run_as role reads.
CREATE ROLE bench_floor LOGIN IN ROLE mcp_support_reader;
CREATE ROLE bench_peer LOGIN PASSWORD 'bench' IN ROLE mcp_support_reader;
GRANT USAGE ON SCHEMA bench TO bench_floor;
GRANT INSERT ON bench.plain_audit TO bench_floor;
GRANT USAGE ON SEQUENCE bench.plain_audit_id_seq TO bench_floor;
-- A large result, capped by the tool's limits: up to 100,000 rows.
SELECT mcp.create_tool(
    name        => 'list_customers',
    description => 'Customers in id order, at most :limit',
    sql         => 'SELECT id, name, email, plan_name, subscription_status
                      FROM app.customer_support_view ORDER BY id LIMIT :limit',
    parameters  => '[{"name": "limit", "type": "integer", "minimum": 1, "maximum": 100000}]',
    max_rows    => 100000,
    max_bytes   => 64 * 1024 * 1024,
    timeout     => '30 seconds',
    run_as      => 'mcp_support_reader');
SELECT mcp.grant_tool('list_customers', 'agent_support');
-- The bridge's logins confirm audit durability themselves (mcp.call_tool_deferred): a durable
-- call frees its connection when its statement ends, one waiter confirms many records at once.
GRANT mcp_audit_confirmer TO agent_support;
SQL
# Settle the freshly loaded table (hint bits, visibility map, a checkpoint).
psql -q -d bench -c 'VACUUM (FREEZE, ANALYZE)' -c CHECKPOINT >/dev/null

lookup_columns="id, name, email, plan_name, subscription_status, last_login_date, active_users_30d, open_tickets_count"
cat >"$bench_scripts/floor_a.sql" <<SQL
\set g random(1, 1000000)
SELECT $lookup_columns FROM app.customer_support_view WHERE email = 'customer' || :g || '@example.com' LIMIT 1;
SQL
cat >"$bench_scripts/floor_b.sql" <<'SQL'
\set g random(1, 1000000)
SELECT * FROM bench.lookup_audited('customer' || :g || '@example.com');
SQL
# The database backends serving the agents' connections: largest peak RSS and private RSS now.
cat >"$bench_scripts/backend_rss.sh" <<SH
for pid in \$(psql -Atq -d bench -c "SELECT pid FROM pg_stat_activity WHERE usename IN ('agent_support', 'bench_peer')"); do
  awk '/^VmHWM/ {h=\$2} /^RssAnon/ {a=\$2} END {print h, a}' /proc/\$pid/status 2>/dev/null
done | sort -n | tail -n 1 | awk '{printf "%d/%d", \$1, \$2}'
SH

dsn_pg_mcp="host=127.0.0.1 port=$port dbname=bench user=agent_support"
url_peer="postgresql://bench_peer:bench@127.0.0.1:$port/bench"
mcp_call='{"name":"get_customer_info","arguments":{"email":"customer{N}@example.com"}}'
peer_sql="SELECT $lookup_columns FROM app.customer_support_view WHERE email = 'customer{N}@example.com' LIMIT 1"
cat >"$bench_scripts/tools.yaml" <<YAML
sources:
  bench:
    kind: postgres
    host: 127.0.0.1
    port: $port
    database: bench
    user: bench_peer
    password: bench
tools:
  get_customer_info:
    kind: postgres-sql
    source: bench
    description: Support context for one customer, found by email.
    parameters:
      - name: email
        type: string
        description: Customer email address
    statement: SELECT $lookup_columns FROM app.customer_support_view WHERE email = \$1 LIMIT 1
YAML

declare -A rows  # case -> "agents calls/s p50 p99 server_rss_kb backend_rss_kb floor"
order=()
record() { rows[$1]="$2"; order+=("$1"); }
field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }

floor() {  # name script agents: pgbench with a log of every transaction's latency
  local logs tps p50 p99
  logs=$(mktemp -d -p "$bench_scripts")
  tps=$(cd "$logs" && pgbench -n -M prepared -U bench_floor -c "$3" -j "$3" -T "$seconds" -l \
    -f "$bench_scripts/$2.sql" bench 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}')
  read -r p50 p99 < <(cat "$logs"/pgbench_log.* | awk '{print $3 / 1000}' | sort -n |
    awk '{v[NR] = $1} END {printf "%.3f %.3f\n", v[int(NR * 0.5 + 0.5)], v[int(NR * 0.99 + 0.5)]}')
  record "$1/$3" "$3 $tps $p50 $p99 - - -"
}

mcp_case() {  # name agents call-json floor-key server-command...
  local name=$1 agents=$2 call=$3 floor_key=$4 out
  shift 4
  out=$("$client" calls --agents "$agents" --seconds "$seconds" --call "$call" \
    --probe "sh $bench_scripts/backend_rss.sh" -- "$@")
  record "$name/$agents" "$agents $(field "$out" calls_per_s) $(field "$out" p50_ms) \
$(field "$out" p99_ms) $(field "$out" rss_kb) $(field "$out" probe) $floor_key"
  [ "$name" != "pg_mcp durable" ] || list_ms=${list_ms:-$(field "$out" list_p50_ms)}
}

audit_mode() {
  psql -Atq -d bench -c "ALTER ROLE agent_support SET pg_mcp.audit_mode = '$1'" >/dev/null
}

if [ "$only" != http ]; then
echo "== floors (pgbench, prepared, ${seconds}s per case)" >&2
pgbench -n -M prepared -U bench_floor -c 2 -j 2 -T 2 -f "$bench_scripts/floor_a.sql" bench \
  >/dev/null 2>&1  # warm-up
for agents in 1 8; do
  floor "floor A: lookup" floor_a "$agents"
  floor "floor B: lookup + audit insert" floor_b "$agents"
done

echo "== pg_mcp through pg_mcp_bridge (stdio)" >&2
audit_mode durable
for agents in 1 8; do
  mcp_case "pg_mcp durable" "$agents" "$mcp_call" "floor B: lookup + audit insert/$agents" \
    "$bridge" --log-level error "$dsn_pg_mcp"
done
audit_mode fast
for agents in 1 8; do
  mcp_case "pg_mcp fast" "$agents" "$mcp_call" "floor A: lookup/$agents" \
    "$bridge" --log-level error "$dsn_pg_mcp"
done
audit_mode durable
cold_pg_mcp=$("$client" cold --runs 20 -- "$bridge" --log-level error "$dsn_pg_mcp")
small=$("$client" once --call '{"name":"list_customers","arguments":{"limit":10}}' -- \
  "$bridge" --log-level error "$dsn_pg_mcp")
large=$("$client" once --call '{"name":"list_customers","arguments":{"limit":100000}}' -- \
  "$bridge" --log-level error "$dsn_pg_mcp")

echo "== peers (same client, same lookup)" >&2
peer_call_postgres="{\"name\":\"query\",\"arguments\":{\"sql\":\"$peer_sql\"}}"
peer_call_dbhub="{\"name\":\"execute_sql\",\"arguments\":{\"sql\":\"$peer_sql\"}}"
peer_call_toolbox="$mcp_call"
server_postgres=(node "$peers/@modelcontextprotocol/server-postgres/dist/index.js" "$url_peer")
dbhub=(node "$peers/@bytebase/dbhub/dist/index.js" --transport stdio --dsn "$url_peer?sslmode=disable")
toolbox=("$peers/@toolbox-sdk/server-linux-x64/bin/toolbox" --stdio --disable-version-check
  --config "$bench_scripts/tools.yaml")
for agents in 1 8; do
  mcp_case "server-postgres 0.6.2" "$agents" "$peer_call_postgres" "floor A: lookup/$agents" \
    "${server_postgres[@]}"
  mcp_case "dbhub 1.4.0" "$agents" "$peer_call_dbhub" "floor A: lookup/$agents" "${dbhub[@]}"
  mcp_case "MCP Toolbox 1.12.0" "$agents" "$peer_call_toolbox" "floor A: lookup/$agents" \
    "${toolbox[@]}"
done
fi  # not only http
echo "== 50 agents over Streamable HTTP: pg_mcp_bridge --http (pool of 10) and MCP Toolbox" >&2
# http_case NAME URL SERVER_PID: 50 sessions, each on its own keep-alive connection; with the
# CPU time per call of each party over the timed window (client, server, PostgreSQL's backends,
# the audit writer), which does not depend on how busy the shared cores are.
http_case() {
  local out
  out=$("$client" http --agents 50 --seconds "$seconds" --call "$mcp_call" --server-pid "$3" \
    --postmaster-pid "$(head -n 1 "$bench_workdir/data/postmaster.pid")" -- "$2")
  http_rows+=("$(printf '%-34s %9s %8s %8s %10s' "$1" "$(field "$out" calls_per_s)" \
    "$(field "$out" p50_ms)" "$(field "$out" p99_ms)" \
    "$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$3/status")")")
  cpu_rows+=("$(printf '%-34s %9s %8s %8s %8s' "$1" "$(field "$out" cpu_client_us)" \
    "$(field "$out" cpu_server_us)" "$(field "$out" cpu_pg_us)" "$(field "$out" cpu_writer_us)")")
}
# The CPU table, after the HTTP table.
print_cpu_table() {
  echo "CPU time per call over the timed window, µs (from /proc; PostgreSQL: every backend):"
  printf '  %-34s %9s %8s %8s %8s\n' server client server postgres writer
  for row in "${cpu_rows[@]}"; do echo "  $row"; done
}
http_rows=()
cpu_rows=()
for mode in durable fast; do
  audit_mode "$mode"
  http_port=$((port + 1))
  "$bridge" --http "127.0.0.1:$http_port" --pool-size 10 --log-level error "$dsn_pg_mcp" &
  http_pid=$!
  wait_http "$http_port"
  http_case "pg_mcp $mode" "http://127.0.0.1:$http_port/mcp" "$http_pid"
  kill "$http_pid"
  wait "$http_pid" || true
done
audit_mode durable
# The same lookup through one shared login acting per call as a principal (--auth token):
# the cost of the bearer token check and SET LOCAL ROLE in the call's statement.
bench_token=$(psql -Atq -d bench -v ON_ERROR_STOP=1 <<'SQL'
DROP ROLE IF EXISTS bench_bridge;
CREATE ROLE bench_bridge LOGIN NOINHERIT;
GRANT agent_support, mcp_audit_confirmer TO bench_bridge;
SELECT mcp.drop_principal('bench-support', if_exists => true);
SELECT mcp.create_principal('bench-support', 'agent_support');
SELECT mcp.create_token('bench-support', 'bench/run.sh');
SQL
)
bench_token=$(printf '%s\n' "$bench_token" | grep '^pgmcp_')
http_port=$((port + 1))
"$bridge" --http "127.0.0.1:$http_port" --pool-size 10 --auth token --log-level error \
  "host=127.0.0.1 port=$port dbname=bench user=bench_bridge" &
http_pid=$!
wait_http "$http_port"
export MCP_BENCH_BEARER=$bench_token
http_case "pg_mcp durable, bearer tokens" "http://127.0.0.1:$http_port/mcp" "$http_pid"
unset MCP_BENCH_BEARER
kill "$http_pid"
wait "$http_pid" || true
toolbox_port=$((port + 2))
"$peers/@toolbox-sdk/server-linux-x64/bin/toolbox" --config "$bench_scripts/tools.yaml" \
  --address 127.0.0.1 --port "$toolbox_port" --disable-version-check --log-level ERROR \
  >/dev/null 2>&1 &
toolbox_pid=$!
wait_http "$toolbox_port"
http_case "MCP Toolbox 1.12.0" "http://127.0.0.1:$toolbox_port/mcp" "$toolbox_pid"
kill "$toolbox_pid"
wait "$toolbox_pid" || true

if [ "$only" = http ]; then
  {
    echo "pg_mcp benchmark (HTTP only): ${seconds}s per case, $(nproc) cores, PostgreSQL $(pg_config --version | awk '{print $2}'), fsync on, TCP loopback"
    echo "50 concurrent agents over Streamable HTTP (one session and keep-alive connection each):"
    printf '  %-34s %9s %8s %8s %10s\n' server calls/s p50_ms p99_ms server_MB
    for row in "${http_rows[@]}"; do echo "  $row"; done
    print_cpu_table
  } | tee "$result_file"
  exit 0
fi
cold_postgres=$("$client" cold --runs 10 -- "${server_postgres[@]}")
cold_dbhub=$("$client" cold --runs 10 -- "${dbhub[@]}")
cold_toolbox=$("$client" cold --runs 10 -- "${toolbox[@]}")

psql -Atq -d bench -c "SELECT verified FROM mcp.verify_audit()" | grep -qx t ||
  { echo "audit chain verification failed" >&2; exit 1; }
audited=$(psql -Atq -d bench -c "SELECT count(*) FROM mcp.audit_log")

{
  echo "pg_mcp benchmark: ${seconds}s per case, $(nproc) cores, PostgreSQL $(pg_config --version | awk '{print $2}'), fsync on, TCP loopback"
  echo "lookup by email on app.customer_support_view over 1,000,000 customers; audit rows written: $audited, hash chain verified"
  echo
  printf '%-40s %6s %9s %8s %8s %10s %10s %9s %9s\n' case agents calls/s p50_ms p99_ms \
    server_MB backend_MB "vs floor" "p50 vs"
  for key in "${order[@]}"; do
    read -r agents tps p50 p99 rss probe floor_key <<<"${rows[$key]}"
    ratio=- p50_ratio=- server_mb=- backend_mb=-
    if [ "$floor_key" != - ]; then
      read -r _ ftps fp50 _ <<<"${rows[$floor_key]}"
      ratio=$(awk -v a="$tps" -v b="$ftps" 'BEGIN {printf "%.2f", a / b}')
      p50_ratio=$(awk -v a="$p50" -v b="$fp50" 'BEGIN {printf "%.2f", a / b}')
    fi
    [ "$rss" = - ] || server_mb=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
    [ "$probe" = - ] || [ -z "$probe" ] ||
      backend_mb=$(awk -v p="$probe" 'BEGIN {split(p, v, "/"); printf "%.1f/%.1f", v[1] / 1024, v[2] / 1024}')
    printf '%-40s %6s %9s %8s %8s %10s %10s %9s %9s\n' "${key%/*}" "$agents" "$tps" "$p50" \
      "$p99" "$server_mb" "$backend_mb" "$ratio" "$p50_ratio"
  done
  echo
  echo "tools/list through the bridge (p50 of 20 warm lists after the timed calls, 1 agent): ${list_ms} ms"
  echo "cold start to the initialize result (median of runs; min, max):"
  printf '  %-24s %s\n' "pg_mcp_bridge" "$cold_pg_mcp" "server-postgres" "$cold_postgres" \
    "dbhub" "$cold_dbhub" "MCP Toolbox" "$cold_toolbox"
  echo "50 concurrent agents over Streamable HTTP (one session and keep-alive connection each):"
  printf '  %-34s %9s %8s %8s %10s\n' server calls/s p50_ms p99_ms server_MB
  for row in "${http_rows[@]}"; do echo "  $row"; done
  print_cpu_table
  echo "pg_mcp_bridge peak RSS, one call of list_customers:"
  echo "  10 rows:      $small"
  echo "  100,000 rows: $large"
  fast8=$(read -r _ t _ <<<"${rows["pg_mcp fast/8"]}"; echo "$t")
  best_peer=0
  for peer in "server-postgres 0.6.2" "dbhub 1.4.0" "MCP Toolbox 1.12.0"; do
    read -r _ t _ <<<"${rows["$peer/8"]}"
    [ "$t" -le "$best_peer" ] || best_peer=$t
  done
  echo "pg_mcp fast with 8 agents vs the fastest peer with 8 agents: $(awk -v a="$fast8" -v b="$best_peer" 'BEGIN {printf "%.1f", a / b}')x"
  echo
  echo "server_MB: peak RSS of one MCP server process (the largest over the agents' processes);"
  echo "backend_MB: the largest serving backend's peak RSS (includes shared buffers it touched) / its private RSS."
  echo "vs floor: calls/s over the floor's (pg_mcp durable: floor B; fast and peers: floor A); p50 vs: p50 latency over the floor's."
} | tee "$result_file"
