#!/usr/bin/env bash
# Builds the container images with buildah and smoke-tests what is in them: the bridge image
# (deploy/Containerfile) and the try-it image (deploy/Containerfile.try). Where no image
# registry is reachable, the base (debian:bookworm-slim) is made first from Debian's packages
# with debootstrap. Each image's content is then run with `buildah run --isolation chroot`
# (this machine's cgroups refuse `podman run`): the bridge image against a throwaway cluster,
# the try-it image on its own; each must answer /readyz and one MCP call of the official SDK.
#   scripts/images.sh              build both and smoke-test them (as root; ~10 minutes)
#   PG_MCP_IMAGES="bridge" scripts/images.sh     one of them
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
section() { printf '== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
[ "$(id -u)" = 0 ] || { echo "scripts/images.sh runs as root (buildah, debootstrap)" >&2; exit 1; }
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah debootstrap >/dev/null; break; }
done
[ -x build/node/bin/node ] && export PATH="$PWD/build/node/bin:$PATH"
images=${PG_MCP_IMAGES:-"bridge try"}
# The host's CA bundle for the build's npm (it may trust a proxy the image's bundle does not).
host_ca=(--volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro
         --build-arg NODE_EXTRA_CA_CERTS=/run/host-ca.crt)
base=docker.io/library/debian:bookworm-slim
work=$(mktemp -d /tmp/pg_mcp_images.XXXXXX)
chmod 755 "$work"  # the cluster's owner reaches its directory in it
containers=()
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for ctr in "${containers[@]}"; do buildah rm "$ctr" >/dev/null 2>&1 || true; done
  "$root/scripts/cluster.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  section "base image $base from Debian's packages (debootstrap --variant=minbase bookworm)"
  ctr=$(buildah from scratch)
  containers+=("$ctr")
  mnt=$(buildah mount "$ctr")
  debootstrap --variant=minbase bookworm "$mnt" http://deb.debian.org/debian >"$work/debootstrap.log"
  # Slim as the official image is: no package cache, lists, documentation or translations.
  rm -rf "$mnt"/var/cache/apt/archives/*.deb "$mnt"/var/lib/apt/lists/* "$mnt"/usr/share/doc/* \
         "$mnt"/usr/share/man/* "$mnt"/usr/share/locale/* "$mnt"/var/log/*.log
  cat >"$mnt/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
CFG
  buildah umount "$ctr" >/dev/null
  buildah config --cmd bash "$ctr"
  buildah commit --rm "$ctr" "$base" >/dev/null
fi

# A throwaway server of the demo database for the bridge image (its socket is mounted in).
wait_ready() {  # URL SECONDS LOG
  for _ in $(seq $(($2 * 10))); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
    sleep 0.1
  done
  echo "$1 did not become ready; its log:" >&2
  tail -n 30 "$3" >&2
  return 1
}

for image in $images; do
  case $image in
    bridge)
      section "build the bridge image (deploy/Containerfile)"
      buildah bud --isolation chroot --pull-never --format docker -q -f deploy/Containerfile -t localhost/pg-mcp-bridge:latest . >/dev/null
      buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' localhost/pg-mcp-bridge:latest
      section "smoke: the bridge image's content against a throwaway cluster"
      bin=$(scripts/build_extension.sh 15)
      export PATH="$bin:$PATH"
      eval "$(scripts/cluster.sh start "$work/pg" 54371)"
      createdb -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" smoke
      psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d smoke -f demo/demo.sql >/dev/null
      token=$(psql -X -Atq -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d smoke <<'SQL' | tail -n 1
CREATE ROLE image_bridge LOGIN NOINHERIT;
GRANT agent_acme TO image_bridge;
SELECT mcp.create_token('acme-support', 'scripts/images.sh');
SQL
)
      ctr=$(buildah from --pull-never localhost/pg-mcp-bridge:latest)
      containers+=("$ctr")
      # Configuration as a deployment gives it: environment variables and a mounted file.
      printf 'pool-size = 3\nauth = token\n' >"$work/bridge.conf"
      buildah config --env PG_MCP_BRIDGE_HTTP=127.0.0.1:18181 --env PG_MCP_BRIDGE_CONFIG=/etc/pg_mcp/bridge.conf \
        --env PG_MCP_BRIDGE_DSN="host=$PGHOST port=$PGPORT dbname=smoke user=image_bridge" "$ctr"
      buildah run --isolation chroot -v "$PGHOST:$PGHOST" -v "$work/bridge.conf:/etc/pg_mcp/bridge.conf:ro" \
        "$ctr" -- /usr/local/bin/pg_mcp_bridge >"$work/bridge.log" 2>&1 &
      pids+=($!)
      wait_ready http://127.0.0.1:18181/readyz 20 "$work/bridge.log"
      grep -q '"level":"notice"' "$work/bridge.log"  # the image's JSON logs
      # The image's HEALTHCHECK command, run in it.
      health=$(buildah inspect --type image localhost/pg-mcp-bridge:latest |
        node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
          const t = JSON.parse(s).Docker.config.Healthcheck.Test; process.stdout.write(t[t.length - 1]); })')
      buildah run --isolation chroot "$ctr" -- /bin/bash -c "$health"
      echo "HEALTHCHECK: healthy"
      [ "$(buildah run --isolation chroot "$ctr" -- id -u)" = 10001 ] && echo "runs as uid 10001"
      (cd test/sdk && node agent-session.mjs http://127.0.0.1:18181/mcp "$token" get_tenant_customers '{"plan_name": "pro"}') \
        >"$work/session.log"
      grep -q ': ok, audit id [0-9]' "$work/session.log" || { cat "$work/session.log"; exit 1; }
      echo "an SDK call through the image: ok"
      # SIGTERM to the bridge itself, as a container runtime sends it to PID 1.
      kill -TERM "$(pgrep -n -f '^/usr/local/bin/pg_mcp_bridge')"
      wait "${pids[-1]}"
      grep -q 'HTTP server stopped' "$work/bridge.log"
      echo "SIGTERM: drained and stopped, exit status 0"
      scripts/cluster.sh stop "$work/pg" >/dev/null
      ;;
    try)
      section "build the try-it image (deploy/Containerfile.try)"
      buildah bud --isolation chroot --pull-never --format docker -q "${host_ca[@]}" -f deploy/Containerfile.try -t localhost/pg-mcp-try:latest . >/dev/null
      buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' localhost/pg-mcp-try:latest
      section "smoke: the try-it image's content (the demo, one command)"
      ctr=$(buildah from --pull-never localhost/pg-mcp-try:latest)
      containers+=("$ctr")
      buildah config --env PG_MCP_DEMO_HTTP_PORT=18765 --env PG_MCP_DEMO_PORT=54372 "$ctr"
      buildah run --isolation chroot "$ctr" -- scripts/demo.sh >"$work/try.log" 2>&1 &
      pids+=($!)
      for _ in $(seq 600); do grep -q 'Serving until' "$work/try.log" && break; sleep 0.5; done
      grep -q 'Serving until' "$work/try.log" || { tail -n 40 "$work/try.log"; exit 1; }
      wait_ready http://127.0.0.1:18765/readyz 5 "$work/try.log"
      token=$(sed -n 's/.*support agent (tool get_customer_info): *//p' "$work/try.log" | head -n 1)
      (cd test/sdk && node agent-session.mjs http://127.0.0.1:18765/mcp "$token" get_customer_info \
         '{"email": "customer1@example.com"}') >"$work/session.log"
      grep -q ': ok, audit id [0-9]' "$work/session.log" || { cat "$work/session.log"; exit 1; }
      echo "an SDK call to the try-it image's demo: ok"
      kill -TERM "${pids[-1]}"
      wait "${pids[-1]}" || true
      ;;
    *) echo "unknown image $image (bridge or try)" >&2; exit 2 ;;
  esac
done
section "images built and smoke-tested: $images"
