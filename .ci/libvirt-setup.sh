#!/usr/bin/env bash
# A real libvirt for the tests (Debian 12 packages, no systemd): virtlogd, virtlockd and
# libvirtd started by hand, the remote API on 127.0.0.1:16509 without auth (loopback only), a
# `default` dir pool for uploaded images. Idempotent: safe to run on a machine that has it all.
# Adapted from shared/infra/libvirt-setup.sh (measured there: ~10 s with QEMU installed).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v libvirtd >/dev/null || ! command -v virsh >/dev/null; then
  timeout 600 apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils >/dev/null
fi
conf=/etc/libvirt/libvirtd.conf
# TCP listener for qemu+tcp://127.0.0.1/system: no TLS, no auth, loopback only.
sed -i -e 's/^#\?listen_tls = .*/listen_tls = 0/' -e 's/^#\?listen_tcp = .*/listen_tcp = 1/' \
       -e 's/^#\?auth_tcp = .*/auth_tcp = "none"/' "$conf"
grep -q '^listen_addr' "$conf" || echo 'listen_addr = "127.0.0.1"' >> "$conf"
# No polkit/dbus without systemd: members of group libvirt (nova) use the rw socket without auth.
grep -q '^auth_unix_rw' "$conf" || cat >> "$conf" <<'CONF'
unix_sock_group = "libvirt"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
CONF
mkdir -p /run/libvirt /var/lib/libvirt/images
# Started again on each try: a daemon still on its way out (stopped just before) is seen by
# pgrep, then gone.
start_daemons() {
  pgrep -x virtlogd  >/dev/null || virtlogd -d
  pgrep -x virtlockd >/dev/null || virtlockd -d
  pgrep -x libvirtd  >/dev/null || libvirtd -d --listen
}
V="virsh -c qemu+tcp://127.0.0.1/system"
for _ in $(seq 1 60); do start_daemons; $V version >/dev/null 2>&1 && break; sleep 1; done
$V version >/dev/null
# The pool images are uploaded to (virt-install would create it; Debian's packages do not).
if ! $V pool-info default >/dev/null 2>&1; then
  $V pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
fi
# (output captured first: grep -q under pipefail would fail the pipeline when virsh gets SIGPIPE)
info=$($V pool-info default)
grep -q 'State:.*running' <<<"$info" || $V pool-start default >/dev/null
$V pool-autostart default >/dev/null 2>&1 || true
echo "libvirt $($V version | sed -n 's/^Running hypervisor: //p') at qemu+tcp://127.0.0.1/system, pool default"
