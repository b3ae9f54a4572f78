#!/usr/bin/env bash
# Runs every test suite: builds and installs the extension, builds the bridge and the unit
# tests, starts a throwaway PostgreSQL cluster, and runs pg_regress, unit and end-to-end tests.
# The cluster is stopped and removed on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

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

echo "== format check, META.json"
make -s format-check
node test/meta.mjs

echo "== build and install the extension"
make -s -j"$jobs"
make -s install

echo "== build the bridge and the unit tests (CMake)"
cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/cmake -j"$jobs" >/dev/null

echo "== unit tests"
ctest --test-dir build/cmake --output-on-failure -j"$jobs" | tail -n 3

echo "== fuzz: token verifier, HTTP requests, JSON-RPC (libFuzzer, ${PG_MCP_FUZZ_SECONDS:-20} s each)"
test/fuzz/run.sh

workdir=$(mktemp -d /tmp/pg_mcp_test.XXXXXX)
port=${PG_MCP_TEST_PORT:-54329}
cleanup() {
  status=$?
  "$root/scripts/cluster.sh" stop "$workdir" || true
  if [ $status -ne 0 ] && [ -f "$workdir/server.log" ]; then
    echo "== server log (last 40 lines)"; tail -n 40 "$workdir/server.log"
  fi
  rm -rf "$workdir"
  exit $status
}
trap cleanup EXIT INT TERM

echo "== start a throwaway cluster in $workdir"
eval "$("$root/scripts/cluster.sh" start "$workdir" "$port")"
export PGHOST PGPORT PGUSER

echo "== pg_regress"
if ! make -s installcheck; then
  [ -f build/regress/regression.diffs ] && head -n 200 build/regress/regression.diffs
  exit 1
fi
echo "== dump and restore keep tool definitions"
test/dump_restore.sh

echo "== upgrade: ALTER EXTENSION pg_mcp UPDATE equals a fresh install and keeps the data"
test/upgrade.sh

echo "== audit trail: terminated callers, a killed writer, a full queue"
test/audit_durability.sh

echo "== end-to-end: pg_mcp_bridge against the demo database"
export PG_MCP_E2E_DB=pg_mcp_e2e
createdb "$PG_MCP_E2E_DB"
psql -q -v ON_ERROR_STOP=1 -d "$PG_MCP_E2E_DB" -f demo/demo.sql >/dev/null
build/cmake/e2e_tests --gtest_brief=1

echo "== real clients: the official MCP TypeScript SDKs (v1 and v2)"
(cd test/sdk && PG_MCP_BRIDGE="$root/build/cmake/pg_mcp_bridge" node --test --test-concurrency=1 --test-reporter=spec)
echo "== the same v1 tool tests over Streamable HTTP (pg_mcp_bridge --http)"
(cd test/sdk && PG_MCP_SDK_TRANSPORT=http PG_MCP_BRIDGE="$root/build/cmake/pg_mcp_bridge" \
  node --test --test-concurrency=1 --test-reporter=spec \
  v1-legacy.test.mjs v1-output-schema.test.mjs v1-cancel.test.mjs v1-list-changed.test.mjs \
  v1-resources.test.mjs v1-drafts.test.mjs)

echo "== production topology: hot standby, PgBouncer, HTTP bridge with tokens"
test/deployment.sh "$workdir" "$port"

echo "== Debian packages: build, install, smoke test"
test/packages.sh $((port + 20))

echo "== all tests passed"
