#!/usr/bin/env bash
# Starts podman's Docker-compatible API on a unix socket, so Docker clients (testcontainers) can
# use podman as their engine on machines without a Docker daemon. Prints the DOCKER_HOST to use.
# Usage: deploy/podman/start-podman-service.sh SOCKET_PATH [PID_FILE]
# The service runs until killed (kill "$(cat PID_FILE)").
set -euo pipefail
SOCKET="${1:?usage: start-podman-service.sh SOCKET_PATH [PID_FILE]}"
PID_FILE="${2:-${SOCKET}.pid}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "$0")" && pwd)/containers.conf}"
command -v podman >/dev/null || { echo "start-podman-service: podman is missing (apt-get install podman runc)" >&2; exit 1; }
mkdir -p "$(dirname "$SOCKET")"
rm -f "$SOCKET"
podman system service --time=0 "unix://$SOCKET" >"${SOCKET}.log" 2>&1 &
echo $! >"$PID_FILE"
for _ in $(seq 1 100); do
  if [[ -S "$SOCKET" ]] && curl -fsS --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; then
    echo "DOCKER_HOST=unix://$SOCKET"
    exit 0
  fi
  sleep 0.1
done
echo "start-podman-service: the API did not come up on $SOCKET; see ${SOCKET}.log" >&2
kill "$(cat "$PID_FILE")" 2>/dev/null || true
exit 1
