#!/usr/bin/env bash
# Builds and installs the extension for one PostgreSQL version, in build/pgNN (a build
# directory per version, so one never overwrites another), and prints that server's bindir.
#   scripts/build_extension.sh [VERSION=15]      (the server comes from scripts/pg_server.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version=${1:-15}
pg_config=$(scripts/pg_server.sh "$version")
# Objects of an in-tree `make` would be found through VPATH by the per-version build.
if compgen -G "extension/src/*.o" >/dev/null || [ -e pg_mcp.so ] ||
  compgen -G "extension/pg_mcp--*--*.sql" >/dev/null; then
  make -s clean >/dev/null
fi
build=build/pg$version
mkdir -p "$build"
make -s -C "$build" -f "$root/Makefile" PG_CONFIG="$pg_config" -j"$(nproc 2>/dev/null || echo 2)" >&2
make -s -C "$build" -f "$root/Makefile" PG_CONFIG="$pg_config" install >/dev/null
"$pg_config" --bindir
