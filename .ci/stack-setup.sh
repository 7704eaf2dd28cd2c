#!/usr/bin/env bash
# The real services of the stack / libvirt tests (issue #11), from a bare Debian 12 root shell
# or a kept machine: libvirt (remote API on 127.0.0.1:16509) and a single-node OpenStack on
# 127.0.0.1. Prints how long each part took. Logs of the OpenStack part: $LOG.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LOG=${CAPSTAN_CI_STACK_LOG:-/tmp/capstan-ci-openstack.log}
t0=$(date +%s)
if ! command -v libvirtd >/dev/null || ! command -v keystone-manage >/dev/null || ! command -v nova-compute >/dev/null; then
  timeout 300 apt-get update -qq
fi
bash "$HERE/libvirt-setup.sh"
t1=$(date +%s)
if ! bash "$HERE/openstack-setup.sh" > "$LOG" 2>&1; then
  echo "OpenStack setup failed; the end of $LOG:" >&2
  tail -40 "$LOG" >&2
  exit 1
fi
t2=$(date +%s)
echo "stack services: libvirt $((t1 - t0)) s, OpenStack $((t2 - t1)) s, total $((t2 - t0)) s"
