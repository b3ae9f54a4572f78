#!/usr/bin/env bash
# The Debian packages: built with Debian's own tooling (dpkg-buildpackage, pg_buildext) from a
# copy of the source tree, installed with dpkg, and smoke-tested against the installed files
# only: a fresh cluster loads the packaged library, CREATE EXTENSION runs the packaged scripts,
# the packaged bridge passes --check and serves one official-SDK client. The packages are
# removed again at the end (the caller's `make install` files are put back).
#   test/packages.sh PORT      (as root; needs PGHOST-free environment for its own cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
port=${1:?usage: test/packages.sh PORT}
fail() { echo "packages: FAIL: $*" >&2; exit 1; }

version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" extension/pg_mcp.control)
changelog=$(dpkg-parsechangelog -l debian/changelog -S Version)
[ "$changelog" = "$version" ] ||
  fail "debian/changelog is at $changelog but the extension at $version: add a changelog entry"

work=$(mktemp -d /tmp/pg_mcp_packages.XXXXXX)
chmod 755 "$work"
cleanup() {
  status=$?
  "$root/scripts/cluster.sh" stop "$work/cluster" >/dev/null 2>&1 || true
  dpkg -r pg-mcp-bridge postgresql-15-pg-mcp >/dev/null 2>&1 || true
  # The caller's build of the extension for Debian's server (scripts/test.sh: build/pg15).
  pg15=/usr/lib/postgresql/15/bin/pg_config
  [ -d "$root/build/pg15" ] &&
    make -s -C "$root/build/pg15" -f "$root/Makefile" PG_CONFIG=$pg15 install >/dev/null 2>&1 || true
  [ $status -ne 0 ] && [ -f "$work/build.log" ] && tail -n 40 "$work/build.log"
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT INT TERM

echo "packages: dpkg-buildpackage (a copy of the source tree)"
mkdir "$work/src"
tar -C "$root" --exclude=./build --exclude=./.git --exclude=./test/sdk/node_modules \
    --exclude='*.o' --exclude='*.so' --exclude='*.d' --exclude='*.bc' -cf - . | tar -C "$work/src" -xf -
(cd "$work/src" && make -s clean >/dev/null 2>&1; dpkg-buildpackage -b -us -uc -j"$(nproc)") \
  > "$work/build.log" 2>&1 || fail "dpkg-buildpackage failed"
debs=("$work"/postgresql-15-pg-mcp_"$version"_*.deb "$work"/pg-mcp-bridge_"$version"_*.deb)
for deb in "${debs[@]}"; do [ -f "$deb" ] || fail "missing $deb"; done

# Debian's checks: no error and no warning (informational tags are listed in the README).
echo "packages: lintian"
lintian --fail-on error,warning "$work"/pg-mcp_"$version"_*.changes > "$work/lintian.log" 2>&1 ||
  { cat "$work/lintian.log"; fail "lintian reports errors or warnings"; }
grep -v 'running with root privileges' "$work/lintian.log" | sed 's/^/  /' || true
dpkg-deb -c "$work"/pg-mcp-bridge_"$version"_*.deb > "$work/bridge.files"
grep -q './usr/share/man/man1/pg_mcp_bridge.1.gz' "$work/bridge.files" || fail "pg-mcp-bridge has no manual page"
depends=$(dpkg-deb -f "$work"/postgresql-15-pg-mcp_"$version"_*.deb Depends)
[[ "$depends" == *postgresql-15* ]] || fail "postgresql-15-pg-mcp does not depend on its server: $depends"

echo "packages: dpkg -i ${debs[*]##*/}"
dpkg -i "${debs[@]}" >/dev/null
for file in /usr/bin/pg_mcp_bridge /lib/systemd/system/pg_mcp_bridge.service \
            "$(pg_config --pkglibdir)/pg_mcp.so" \
            "$(pg_config --sharedir)/extension/pg_mcp.control" \
            "$(pg_config --sharedir)/extension/pg_mcp--$version.sql" \
            "$(pg_config --sharedir)/extension/pg_mcp--0.1.0--$version.sql"; do
  dpkg -S "$file" >/dev/null 2>&1 || fail "$file is not installed by a package"
done
grep -q '^ExecStart=/usr/bin/pg_mcp_bridge ' /lib/systemd/system/pg_mcp_bridge.service ||
  fail "the packaged unit does not start /usr/bin/pg_mcp_bridge"
getent passwd pg_mcp >/dev/null || fail "the pg_mcp system user was not created"

echo "packages: smoke test of the installed files on a fresh cluster"
eval "$(env -u PGHOST -u PGPORT "$root/scripts/cluster.sh" start "$work/cluster" "$port")"
export PGHOST PGPORT PGUSER
createdb smoke
psql -X -q -v ON_ERROR_STOP=1 -d smoke -f demo/demo.sql >/dev/null
installed=$(psql -X -Atq -d smoke -c "SELECT extversion || ' ' || mcp.library_version() FROM pg_extension WHERE extname = 'pg_mcp'")
[ "$installed" = "$version $version" ] || fail "installed extension and library: $installed"
check=$(PGDATABASE=smoke PGUSER=agent_support /usr/bin/pg_mcp_bridge --check 2>&1) ||
  fail "pg_mcp_bridge --check: $check"
echo "$check" | sed 's/^/  /' | head -n 3
(cd test/sdk && PG_MCP_BRIDGE=/usr/bin/pg_mcp_bridge PG_MCP_E2E_DB=smoke \
   node --test --test-concurrency=1 --test-name-pattern='server info, tools, validated call' \
   v1-legacy.test.mjs) > "$work/sdk.log" 2>&1 || { cat "$work/sdk.log"; fail "SDK call through the packaged bridge"; }
grep -q '^# pass 1' "$work/sdk.log" || { cat "$work/sdk.log"; fail "the SDK test did not run"; }
echo "packages: ok (${debs[*]##*/})"
