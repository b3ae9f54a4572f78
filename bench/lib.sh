# Sourced by the bench scripts (from the repository root, with $root set). bench_cluster builds
# and installs pg_mcp and starts a throwaway cluster (stopped and removed on exit); bench_start
# also creates the database "bench" with pg_mcp and the 100,000-row table bench.items;
# pgbench_run runs one pgbench case; wait_http waits for a server's port.

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

wait_http() {  # PORT: until something listens on it (bash's /dev/tcp: no curl needed)
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
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

# pg_cpu: the cluster's CPU time so far, in clock ticks: "ALL WRITER HZ". ALL: the postmaster,
# its children and the children that have ended; WRITER: the pg_mcp audit writer while it runs.
pg_cpu() {
  local pm pid all writer=0 own
  local -a f
  pm=$(head -n 1 "$bench_workdir/data/postmaster.pid")
  read -r -a f < <(sed 's/^.*) //' "/proc/$pm/stat")  # f[0] is field 3; utime is field 14
  all=$((f[11] + f[12] + f[13] + f[14]))
  for pid in $(pgrep -P "$pm"); do
    read -r -a f < <(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    [ "${#f[@]}" -gt 12 ] || continue
    own=$((f[11] + f[12]))
    all=$((all + own))
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'pg_mcp audit writer'; then
      writer=$((writer + own))
    fi
  done
  echo "$all $writer $(getconf CLK_TCK)"
}

# cpu_per_call BEFORE AFTER CALLS: "BACKENDS_US WRITER_US", the CPU time per call between two
# pg_cpu samples (a writer that ended meanwhile is counted with the backends).
cpu_per_call() {
  awk -v b="$1" -v a="$2" -v calls="$3" 'BEGIN {
    split(b, x, " "); split(a, y, " ");
    w = y[2] - x[2]; if (w < 0) w = 0;
    all = y[1] - x[1];
    if (calls <= 0) { print "- -"; exit }
    printf "%.1f %.1f\n", (all - w) / y[3] * 1e6 / calls, w / y[3] * 1e6 / calls }'
}
