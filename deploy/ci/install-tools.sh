#!/usr/bin/env bash
# Installs, from Debian's packages, the tools the ops and container suites need on a fresh
# machine: promtool and prometheus (package `prometheus`), podman and runc (the container engine,
# through its Docker-compatible API), debootstrap (the local base image), and kubectl for
# `kubectl kustomize` when the machine has none (Debian's `kubernetes-client`, kubectl 1.20 with
# its built-in kustomize, which renders deploy/k8s as well as newer ones do). Needs root. Does
# nothing for tools already present.
set -euo pipefail

need=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || need+=(prometheus)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v kubectl >/dev/null || need+=(kubernetes-client)
command -v curl >/dev/null || need+=(curl)

if [[ ${#need[@]} -eq 0 ]]; then
  echo "install-tools: everything is installed"
  exit 0
fi
if [[ "$(id -u)" != "0" ]]; then
  echo "install-tools: needs root to install ${need[*]}" >&2
  exit 1
fi
echo "install-tools: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Packages that ship a service (prometheus) must not start it here: tests start their own.
policy=/usr/sbin/policy-rc.d
created_policy=false
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=true
fi
trap '[[ "$created_policy" == true ]] && rm -f "$policy"' EXIT
apt-get install -y -qq "${need[@]}" >/dev/null
for tool in promtool prometheus podman runc debootstrap kubectl; do
  command -v "$tool" >/dev/null || { echo "install-tools: $tool still missing" >&2; exit 1; }
done
echo "install-tools: done"
