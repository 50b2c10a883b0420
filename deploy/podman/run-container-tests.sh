#!/usr/bin/env bash
# Runs the container suite (npm run test:containers) with podman as the Docker engine: builds the
# local base image if it is missing (deploy/base-image/build-base-image.sh), starts podman's
# Docker-compatible API on a private socket, points testcontainers at it, runs the suite and
# stops the API service again. Needs root, podman, runc and debootstrap
# (deploy/ci/install-tools.sh installs them). `.ci/run` runs this; so can a developer.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CONTAINERS_CONF="$PWD/deploy/podman/containers.conf"

bash deploy/base-image/build-base-image.sh

RUN_DIR="$(mktemp -d /tmp/riffle-podman-XXXXXX)"
SOCKET="$RUN_DIR/podman.sock"
stop_service() {
  if [[ -f "$RUN_DIR/podman.pid" ]]; then
    kill "$(cat "$RUN_DIR/podman.pid")" 2>/dev/null || true
  fi
  rm -rf "$RUN_DIR"
}
trap stop_service EXIT
eval "export $(bash deploy/podman/start-podman-service.sh "$SOCKET" "$RUN_DIR/podman.pid")"
export TESTCONTAINERS_RYUK_DISABLED=true
echo "container engine: podman $(podman --version | awk '{ print $3 }') at $DOCKER_HOST"
npm run test:containers
