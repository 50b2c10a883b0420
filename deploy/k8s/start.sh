#!/bin/sh
# Entry point of a Riffle pod in a StatefulSet: derives the node's identity from the pod and
# execs `riffle server`. Inputs (set in the StatefulSet): HOSTNAME (the pod name, <set>-<ordinal>),
# POD_NAMESPACE, NODE_ID_BASE (node id of ordinal 0), HEADLESS_SERVICE (this set's headless
# Service), CONTROLLER_SET and CONTROLLER_REPLICAS (the controller StatefulSet and its size),
# CLUSTER_DOMAIN, and the zone file written by the init container (zone.mjs). Every other
# setting comes in as a RIFFLE_* variable, as everywhere.
set -eu
ordinal="${HOSTNAME##*-}"
case "$ordinal" in
  ''|*[!0-9]*) echo "start.sh: cannot read the ordinal from pod name '$HOSTNAME'" >&2; exit 2 ;;
esac
domain="${CLUSTER_DOMAIN:-cluster.local}"
fqdn="${HOSTNAME}.${HEADLESS_SERVICE}.${POD_NAMESPACE}.svc.${domain}"
zone_file="${ZONE_FILE:-/var/run/riffle/zone}"

export RIFFLE_NODE_ID="$((NODE_ID_BASE + ordinal))"
if [ -s "$zone_file" ]; then
  RIFFLE_AZ="$(cat "$zone_file")"
  export RIFFLE_AZ
fi
export RIFFLE_ADVERTISED_LISTEN="${fqdn}:${RIFFLE_LISTEN##*:}"
export RIFFLE_ADVERTISED_CONTROLLER_LISTEN="${fqdn}:${RIFFLE_CONTROLLER_LISTEN##*:}"
export RIFFLE_ADVERTISED_HTTP="${fqdn}:${RIFFLE_HTTP##*:}"

# Controller i (ordinal i - 1 of the controller set) is voter i, at its stable DNS name.
quorum=""
i=0
while [ "$i" -lt "$CONTROLLER_REPLICAS" ]; do
  voter="$((i + 1))@${CONTROLLER_SET}-${i}.${CONTROLLER_SET}.${POD_NAMESPACE}.svc.${domain}:${RIFFLE_CONTROLLER_LISTEN##*:}"
  quorum="${quorum:+${quorum},}${voter}"
  i=$((i + 1))
done
export RIFFLE_CONTROLLER_QUORUM="$quorum"

# The V8 flags of every server (src/cli/node-process.ts, SERVER_NODE_FLAGS).
exec node --max-semi-space-size=16 --initial-old-space-size=256 /opt/riffle/dist/src/cli/main.js server "$@"
