#!/usr/bin/env bash
# services.sh start|stop|status — the stack that libvirt-setup.sh and openstack-setup.sh set up,
# by hand (sysv init scripts, no systemd). For a developer's machine between sessions; CI runs
# the setup scripts themselves, which start whatever is down. Adapted from shared/infra.
set -u
ORDER="mariadb rabbitmq-server keystone glance-api placement-api neutron-api nova-api nova-conductor nova-scheduler nova-compute"
STATE=${CAPSTAN_CI_STATE:-/var/lib/capstan-ci}
case "${1:-status}" in
start)
  pgrep -x virtlogd >/dev/null || virtlogd -d; pgrep -x virtlockd >/dev/null || virtlockd -d
  pgrep -x libvirtd >/dev/null || libvirtd -d --listen
  for s in $ORDER; do /etc/init.d/$s start; done
  for _ in $(seq 1 60); do curl -sf http://127.0.0.1:9696/ >/dev/null && break; sleep 1; done
  . "$STATE/admin-openrc"
  openstack network list >/dev/null   # neutron warm-up (Zed's port_forwardings bug), before any server GET
  ;;
stop)
  for s in $(echo $ORDER | tr ' ' '\n' | tac); do /etc/init.d/$s stop; done
  for p in $(pgrep -x epmd) $(pgrep -x libvirtd) $(pgrep -x virtlockd) $(pgrep -x virtlogd); do kill "$p"; done
  for _ in $(seq 1 30); do pgrep -x libvirtd >/dev/null || pgrep -x virtlogd >/dev/null || break; sleep 1; done
  ;;
status) for s in $ORDER; do /etc/init.d/$s status >/dev/null 2>&1 && echo "$s up" || echo "$s down"; done ;;
esac
