#!/usr/bin/env bash
# Provides a PostgreSQL server version that Debian 12 does not ship, built from Debian's own
# source package of a newer suite, and prints its pg_config. Debian 12's own 15 is used as is.
#   scripts/pg_server.sh 18        print the pg_config of PostgreSQL 18 (fetch and build once)
#   scripts/pg_server.sh 15        print /usr/lib/postgresql/15/bin/pg_config
#   scripts/pg_server.sh --list    the versions this script knows how to provide
# The build is cached by version outside the clone (PG_MCP_SERVER_CACHE, by default
# /var/cache/pg_mcp as root, ~/.cache/pg_mcp otherwise), keyed by the SHA-256 of the upstream
# tarball that Debian's source index names; a later run (and CI on the same machine) reuses it.
# The system's apt state is untouched: the source index lives in the cache's own lists.
set -euo pipefail

# Versions and where Debian's archive carries their source. 17 is listed in trixie's index but
# its files are not served by the mirror reachable here (404); see the README's support table.
declare -A suite=([18]=sid [17]=trixie)
known="15 18"

if [ "${1:-}" = --list ]; then echo "$known"; exit 0; fi
major=${1:?usage: pg_server.sh MAJOR_VERSION (e.g. 18)}

if [ -x "/usr/lib/postgresql/$major/bin/pg_config" ]; then
  echo "/usr/lib/postgresql/$major/bin/pg_config"; exit 0
fi
[ -n "${suite[$major]:-}" ] || { echo "pg_server.sh: no source for PostgreSQL $major (known: $known)" >&2; exit 2; }

if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/pg_mcp; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/pg_mcp; fi
cache=${PG_MCP_SERVER_CACHE:-$default_cache}
mkdir -p "$cache/src" "$cache/apt/lists/partial"
log() { echo "pg_server.sh: $*" >&2; }

# A completed build records the tarball's checksum; reuse it when that checksum is still the
# one on file (the tarball kept in the cache is checked again, so a damaged cache rebuilds).
for stamp in "$cache"/postgresql-"$major".*/.pg_mcp-built; do
  [ -f "$stamp" ] || continue
  prefix=$(dirname "$stamp")
  read -r sum tarball <"$stamp"
  if [ -f "$cache/src/$tarball" ] && echo "$sum  $cache/src/$tarball" | sha256sum -c --status; then
    echo "$prefix/bin/pg_config"; exit 0
  fi
  log "cached build in $prefix does not match its tarball; rebuilding"
  rm -rf "$prefix"
done

# Build dependencies (the server's own, as Debian configures it where extensions care).
build_deps=(bison flex gettext libicu-dev liblz4-dev libzstd-dev zlib1g-dev libreadline-dev
            libssl-dev pkg-config make gcc g++ tzdata)
missing=()
for p in "${build_deps[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { log "install first: apt-get install ${missing[*]}"; exit 1; }
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# Debian's source index for the suite, in the cache's private apt state.
mirror=${PG_MCP_DEBIAN_MIRROR:-$(awk '/^[[:space:]]*#/ {next}
  {for (i = 1; i <= NF; i++) if (!found && $i ~ /^https?:\/\/.*\/debian\/?$/) found = $i}
  END {print found}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
  /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
echo "deb-src ${mirror%/} ${suite[$major]} main" >"$cache/apt/sources.list"
apt_private=(-o "Dir::Etc::sourcelist=$cache/apt/sources.list" -o Dir::Etc::sourceparts=-
             -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache")
mkdir -p "$cache/apt/cache"
apt-get -qq "${apt_private[@]}" update >/dev/null

fetch() {  # fetch SOURCE_PACKAGE -> sets version, tarball, sum (upstream tarball, checked)
  local record
  record=$(apt-cache "${apt_private[@]}" showsrc "$1" | awk -v RS= 'NR==1')
  [ -n "$record" ] || { log "no source package $1 in ${suite[$major]}"; exit 1; }
  version=$(awk '/^Version:/ {print $2; exit}' <<<"$record")
  read -r sum _ tarball < <(awk '/^Checksums-Sha256:/ {f=1; next} /^[^ ]/ {f=0} f && $3 ~ /\.orig\.tar\.(gz|bz2|xz)$/ {print $1, $2, $3; exit}' <<<"$record")
  if [ ! -f "$cache/src/$tarball" ] || ! echo "$sum  $cache/src/$tarball" | sha256sum -c --status; then
    log "fetching $1 $version from ${suite[$major]}"
    (cd "$cache/src" && apt-get -qq "${apt_private[@]}" source --download-only "$1=$version" >/dev/null 2>&1) ||
      { log "could not fetch the source of $1 $version from $mirror (${suite[$major]})"; exit 1; }
  fi
  echo "$sum  $cache/src/$tarball" | sha256sum -c --status ||
    { log "checksum mismatch for $tarball"; exit 1; }
}

fetch "postgresql-$major"
pg_sum=$sum pg_tarball=$tarball
upstream=${version%%-*}
prefix=$cache/postgresql-$upstream
build=$(mktemp -d /tmp/pg_mcp_server_build.XXXXXX)
trap 'rm -rf "$build"' EXIT
log "building PostgreSQL $upstream into $prefix (about 10 minutes on 2 cores)"
tar -xf "$cache/src/$pg_tarball" -C "$build"
src=$(echo "$build"/postgresql-*)
jobs=$(nproc 2>/dev/null || echo 2)
(
  cd "$src"
  ./configure --prefix="$prefix" --enable-nls --with-openssl --with-icu --with-lz4 --with-zstd \
    --with-system-tzdata=/usr/share/zoneinfo >"$build/configure.log" 2>&1 ||
    { tail -n 30 "$build/configure.log" >&2; exit 1; }
  make -s -j"$jobs" world-bin >"$build/make.log" 2>&1 || { tail -n 40 "$build/make.log" >&2; exit 1; }
  make -s install-world-bin >>"$build/make.log" 2>&1 || { tail -n 40 "$build/make.log" >&2; exit 1; }
  # pg_isolation_regress for the extension's isolation specs (PGXS's ISOLATION).
  make -s -C src/test/isolation install >>"$build/make.log" 2>&1 || { tail -n 40 "$build/make.log" >&2; exit 1; }
)

# hypopg (mcp.advise's hypothetical indexes) from the same suite's source package, when the
# mirror serves it; without it the advise test is skipped on this server (Makefile).
if (fetch hypopg) >/dev/null; then
  fetch hypopg
  tar -xf "$cache/src/$tarball" -C "$build"
  make -s -C "$(echo "$build"/hypopg-*)" PG_CONFIG="$prefix/bin/pg_config" install >"$build/hypopg.log" 2>&1 ||
    log "hypopg did not build against PostgreSQL $upstream; mcp.advise's hypothetical indexes are untested there"
else
  log "no hypopg source for ${suite[$major]}; mcp.advise's hypothetical indexes are untested on $upstream"
fi

echo "$pg_sum $pg_tarball" >"$prefix/.pg_mcp-built"
chmod -R a+rX "$prefix"
log "PostgreSQL $upstream ready in $prefix"
echo "$prefix/bin/pg_config"
