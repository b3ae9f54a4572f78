#!/usr/bin/env bash
# The Debian 12 packages pg_mcp needs, installed when missing (as root), or the exact command
# to run when not root. Sourced or run by scripts/demo.sh and scripts/test.sh:
#   scripts/deps.sh demo    build the extension and the bridge, run a cluster, the demo's agent
#   scripts/deps.sh test    the above, and what the test suites and the package build need
set -euo pipefail
want=${1:-test}

packages=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libpq-dev nlohmann-json3-dev
          libboost-dev libssl-dev cmake g++ make pkg-config libgtest-dev curl)
if [ "$want" = test ]; then
  packages+=(libboost-filesystem-dev pgbouncer postgresql-15-hypopg clang-format
             debhelper dpkg-dev postgresql-server-dev-all)
fi
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "pg_mcp needs these Debian packages; install them, then run this again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "== apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
