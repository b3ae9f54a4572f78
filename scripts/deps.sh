#!/usr/bin/env bash
# The Debian 12 packages pg_mcp needs, installed when missing (as root), or the exact command
# to run when not root. Sourced or run by scripts/demo.sh and scripts/test.sh:
#   scripts/deps.sh demo    build the extension and the bridge, run a cluster, the demo's agent
#   scripts/deps.sh test    the above, and what the test suites and the package build need
set -euo pipefail
want=${1:-test}

packages=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libpq-dev nlohmann-json3-dev
          libboost-dev libboost-filesystem-dev libboost-program-options-dev libssl-dev cmake g++ make pkg-config libgtest-dev curl)
if [ "$want" = test ]; then
  packages+=(pgbouncer postgresql-15-hypopg clang-format openssl
             debhelper dpkg-dev build-essential postgresql-server-dev-all help2man lintian haproxy
             clang libclang-rt-14-dev)
fi
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "pg_mcp needs these Debian packages; install them, then run this again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "== apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The MCP SDKs need Node.js 20 or later; Debian 12's is 18. Then the official Node.js 20 binary
# comes from the npm registry (package node-linux-<arch>) into build/node/bin, which the
# scripts put first on PATH.
root=$(cd "$(dirname "$0")/.." && pwd)
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ] && [ ! -x "$root/build/node/bin/node" ]; then
  case "$(dpkg --print-architecture)" in
    amd64) arch=x64 ;; arm64) arch=arm64 ;; *) echo "no Node.js 20 binary for this architecture" >&2; exit 1 ;;
  esac
  echo "== Node.js $major is too old for the MCP SDKs: node-linux-$arch@20 from the npm registry"
  mkdir -p "$root/build/node/bin"
  npm install --prefix "$root/build/node" --no-save --no-audit --no-fund "node-linux-$arch@20" >/dev/null
  ln -sf "../node_modules/node-linux-$arch/bin/node" "$root/build/node/bin/node"
  "$root/build/node/bin/node" --version
fi
