#!/usr/bin/env bash
# Builds, locally, the image deploy/Dockerfile starts FROM (node:20-bookworm-slim), for machines
# that reach no image registry (our CI and development machines): a Debian bookworm minbase
# root made by debootstrap from the machine's own apt mirror, plus this machine's node binary and
# npm, imported into podman under the Dockerfile's FROM name. Users with a registry never need
# this: they pull the real image.
#
# Package downloads from inside a build here go through a TLS-intercepting proxy the machine
# trusts, so the image carries the machine's system CA bundle and sets NODE_EXTRA_CA_CERTS to it
# (the real node image does not need that; the Dockerfile stays as a user expects).
#
# Usage: deploy/base-image/build-base-image.sh [--force]
# Env: RIFFLE_BASE_IMAGE (default docker.io/library/node:20-bookworm-slim), CONTAINERS_CONF.
set -euo pipefail

TAG="${RIFFLE_BASE_IMAGE:-docker.io/library/node:20-bookworm-slim}"
FORCE="${1:-}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "$0")/.." && pwd)/podman/containers.conf}"

if [[ "$FORCE" != "--force" ]] && podman image exists "$TAG"; then
  echo "base image $TAG already present (use --force to rebuild)"
  exit 0
fi

for tool in debootstrap podman node; do
  command -v "$tool" >/dev/null || { echo "build-base-image: $tool is missing (apt-get install debootstrap podman)" >&2; exit 1; }
done
NODE_BIN="$(readlink -f "$(command -v node)")"
NODE_MAJOR="$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')"
if [[ "$NODE_MAJOR" != "20" ]]; then
  echo "build-base-image: this machine's node is $("$NODE_BIN" --version); the image must carry Node 20" >&2
  exit 1
fi
NPM_DIR="$(dirname "$NODE_BIN")/../lib/node_modules/npm"
[[ -f "$NPM_DIR/bin/npm-cli.js" ]] || NPM_DIR="$(npm root -g)/npm"
[[ -f "$NPM_DIR/bin/npm-cli.js" ]] || { echo "build-base-image: npm not found beside node" >&2; exit 1; }
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[[ -f "$CA_BUNDLE" ]] || { echo "build-base-image: no system CA bundle at $CA_BUNDLE" >&2; exit 1; }

# The machine's own Debian mirror for bookworm (deb822 .sources first, then sources.list).
mirror_of_machine() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$file" ]] || continue
    awk '
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") found = 1 }
      /^$/ { if (found && uri != "") { print uri; exit } uri = ""; found = 0 }
      END { if (found && uri != "") print uri }
    ' "$file" | head -n 1
  done
  { grep -hsE '^deb\s+\S+\s+bookworm\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true; } | awk '{ print $2 }'
}
MIRROR="${RIFFLE_DEBIAN_MIRROR:-$(mirror_of_machine | head -n 1 || true)}"
[[ -n "$MIRROR" ]] || { echo "build-base-image: no bookworm mirror in /etc/apt (set RIFFLE_DEBIAN_MIRROR)" >&2; exit 1; }

WORK="$(mktemp -d /var/tmp/riffle-base-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/root"

echo "debootstrap bookworm (minbase) from the machine's mirror into $ROOT"
debootstrap --variant=minbase --include=libstdc++6,ca-certificates bookworm "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  tail -n 40 "$WORK/debootstrap.log" >&2
  exit 1
}

# Where the official node image keeps node and npm.
install -m 0755 "$NODE_BIN" "$ROOT/usr/local/bin/node"
mkdir -p "$ROOT/usr/local/lib/node_modules"
cp -a "$NPM_DIR" "$ROOT/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/local/bin/npx"
# The machine's CA bundle (which trusts its TLS-intercepting proxy) replaces Debian's.
cp "$CA_BUNDLE" "$ROOT/etc/ssl/certs/ca-certificates.crt"
# Keep the image small, as the slim image does.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/*

chroot "$ROOT" /usr/local/bin/node --version >/dev/null

echo "importing as $TAG"
tar -C "$ROOT" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=$("$NODE_BIN" -p process.versions.node)" \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' \
  - "$TAG" >/dev/null
podman image exists "$TAG"
echo "base image $TAG built: $(podman image inspect --format '{{.Size}}' "$TAG") bytes"
