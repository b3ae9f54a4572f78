# Sourced by the bench scripts (from the repository root, with $root set). bench_cluster builds
# and installs pg_mcp and starts a throwaway cluster (stopped and removed on exit); bench_start
# also creates the database "bench" with pg_mcp and the 100,000-row table bench.items;
# pgbench_run runs one pgbench case.

# bench_cluster PORT [FSYNC=off] [LISTEN]: exports PGHOST PGPORT PGUSER; $bench_scripts is a
# scratch directory for pgbench scripts, removed on exit. LISTEN: TCP addresses to listen on.
# The server version is PG_MCP_BENCH_PG (default 15; scripts/pg_server.sh provides others).
bench_cluster() {
  local pg_bin
  pg_bin=$("$root/scripts/build_extension.sh" "${PG_MCP_BENCH_PG:-15}")
  export PATH="$pg_bin:$PATH" PG_BIN=$pg_bin
  bench_workdir=$(mktemp -d /tmp/pg_mcp_bench.XXXXXX)
  bench_scripts=$(mktemp -d)
  trap bench_cleanup EXIT INT TERM
  eval "$(PG_MCP_CLUSTER_FSYNC="${2:-off}" PG_MCP_CLUSTER_LISTEN="${3:-}" \
    "$root/scripts/cluster.sh" start "$bench_workdir" "$1")"
  export PGHOST PGPORT PGUSER
}

# bench_start PORT [FSYNC=off]: bench_cluster, then the database "bench" with bench.items.
bench_start() {
  bench_cluster "$@"
  createdb bench
  psql -q -v ON_ERROR_STOP=1 -d bench >/dev/null <<'SQL'
CREATE EXTENSION pg_mcp;
CREATE SCHEMA bench;
CREATE TABLE bench.items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO bench.items SELECT g, 'item ' || g FROM generate_series(1, 100000) g;
ANALYZE bench.items;
SQL
}

bench_cleanup() {
  "$root/scripts/cluster.sh" stop "$bench_workdir" || true
  rm -rf "$bench_workdir" "$bench_scripts"
}

# pgbench_run SCRIPT USER CLIENTS SECONDS: prints "calls_per_s latency_ms" for
# $bench_scripts/SCRIPT.sql (prepared protocol).
pgbench_run() {
  pgbench -n -M prepared -U "$2" -c "$3" -j "$3" -T "$4" -f "$bench_scripts/$1.sql" bench 2>/dev/null |
    awk '/^tps/ {tps=$3} /latency average/ {lat=$4} END {printf "%.0f %.3f\n", tps, lat}'
}
