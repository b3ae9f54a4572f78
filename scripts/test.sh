#!/usr/bin/env bash
# Runs every test suite: builds the bridge and the unit tests once, then for each PostgreSQL
# version (15, Debian 12's own, and 18, built once from Debian's source package and cached by
# scripts/pg_server.sh) builds and installs the extension in build/pgNN, starts a throwaway
# cluster and runs every suite against it; then the Debian packages. Clusters are stopped and
# removed on exit, whatever happens.
#   PG_MCP_PG_VERSIONS="18" scripts/test.sh     one version only (default: all, see pg_server.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# Section headers carry the wall time so far (CI notes report each part's).
section() { printf '== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
jobs=$(nproc 2>/dev/null || echo 2)
scripts/deps.sh test
# Node.js 20 from the npm registry when the system's is older (scripts/deps.sh).
[ -x build/node/bin/node ] && export PATH="$PWD/build/node/bin:$PATH"
# npm packages of the real-client tests (the SDKs, the conformance suite and the Node 22 it
# needs), pinned by their lock file; installed again when the lock file has changed.
if [ ! -f test/sdk/node_modules/.package-lock.json ] ||
  [ test/sdk/package-lock.json -nt test/sdk/node_modules/.package-lock.json ]; then
  (cd test/sdk && npm ci --no-audit --no-fund >/dev/null 2>&1)
fi

section "format check, META.json"
make -s format-check
node test/meta.mjs

section "build the bridge and the unit tests (CMake)"
cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPG_MCP_WERROR=ON >/dev/null
cmake --build build/cmake -j"$jobs" >/dev/null

section "unit tests"
ctest --test-dir build/cmake --output-on-failure -j"$jobs" | tail -n 3

section "fuzz: token verifier, HTTP requests, JSON-RPC (libFuzzer, ${PG_MCP_FUZZ_SECONDS:-20} s each)"
test/fuzz/run.sh

versions=${PG_MCP_PG_VERSIONS:-$(scripts/pg_server.sh --list)}
base_path=$PATH
base_port=${PG_MCP_TEST_PORT:-54329}
workdir=
cleanup() {
  status=$?
  if [ -n "$workdir" ]; then
    "$root/scripts/cluster.sh" stop "$workdir" || true
    if [ $status -ne 0 ] && [ -f "$workdir/server.log" ]; then
      section "server log (last 40 lines)"; tail -n 40 "$workdir/server.log"
    fi
    rm -rf "$workdir"
  fi
  exit $status
}
trap cleanup EXIT INT TERM

# Every suite that needs a server, against the server of version $1.
suites_on() {
  local version=$1 started=$SECONDS pg_config bindir build port
  echo "===== PostgreSQL $version"
  section "build and install the extension (build/pg$version)"
  bindir=$(scripts/build_extension.sh "$version")
  pg_config=$bindir/pg_config
  export PATH="$bindir:$base_path" PG_BIN=$bindir
  build=build/pg$version
  port=$((base_port + version * 100 - 1500))
  "$pg_config" --version

  workdir=$(mktemp -d /tmp/pg_mcp_test.XXXXXX)
  section "start a throwaway cluster in $workdir"
  eval "$("$root/scripts/cluster.sh" start "$workdir" "$port")"
  export PGHOST PGPORT PGUSER

  section "pg_regress"
  if ! make -s -C "$build" -f "$root/Makefile" PG_CONFIG="$pg_config" installcheck; then
    for diffs in "$build"/build/regress/regression.diffs "$build"/build/isolation/regression.diffs; do
      [ -f "$diffs" ] && head -n 200 "$diffs"
    done
    exit 1
  fi
  section "dump and restore keep tool definitions"
  test/dump_restore.sh

  section "upgrade: ALTER EXTENSION pg_mcp UPDATE equals a fresh install and keeps the data"
  test/upgrade.sh

  section "audit trail: terminated callers, a killed writer, a full queue"
  test/audit_durability.sh

  section "end-to-end: pg_mcp_bridge against the demo database"
  export PG_MCP_E2E_DB=pg_mcp_e2e
  createdb "$PG_MCP_E2E_DB"
  psql -q -v ON_ERROR_STOP=1 -d "$PG_MCP_E2E_DB" -f demo/demo.sql >/dev/null
  build/cmake/e2e_tests --gtest_brief=1

  section "real clients: the official MCP TypeScript SDKs (v1 and v2)"
  (cd test/sdk && PG_MCP_BRIDGE="$root/build/cmake/pg_mcp_bridge" node --test --test-concurrency=1 --test-reporter=spec)
  section "the same v1 tool tests over Streamable HTTP (pg_mcp_bridge --http)"
  (cd test/sdk && PG_MCP_SDK_TRANSPORT=http PG_MCP_BRIDGE="$root/build/cmake/pg_mcp_bridge" \
    node --test --test-concurrency=1 --test-reporter=spec \
    v1-legacy.test.mjs v1-output-schema.test.mjs v1-cancel.test.mjs v1-list-changed.test.mjs \
    v1-resources.test.mjs v1-drafts.test.mjs)

  section "production topology: hot standby, PgBouncer, HTTP bridge with tokens"
  test/deployment.sh "$workdir" "$port"

  "$root/scripts/cluster.sh" stop "$workdir"
  rm -rf "$workdir"
  workdir=
  export PATH=$base_path
  unset PG_BIN PGHOST PGPORT PGUSER
  echo "===== PostgreSQL $version: every suite passed ($((SECONDS - started)) s)"
}

for version in $versions; do suites_on "$version"; done

section "Debian packages: build, install, smoke test"
test/packages.sh $((base_port + 20))

section "all tests passed"
