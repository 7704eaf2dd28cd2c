#!/usr/bin/env bash
# services.sh start|stop|status|clear-stale — the stack that libvirt-setup.sh and openstack-setup.sh set up,
# by hand (sysv init scripts, no systemd). For a developer's machine between sessions; CI runs
# the setup scripts themselves, which start whatever is down. Adapted from shared/infra.
set -u
ORDER="mariadb rabbitmq-server keystone glance-api placement-api neutron-api nova-api nova-conductor nova-scheduler nova-compute"
STATE=${CAPSTAN_CI_STATE:-/var/lib/capstan-ci}
# A service killed without its init script (a restored machine, a session that ended) leaves
# its pidfile behind; once that pid belongs to another process, the init script reports the
# service as running and `start` starts nothing. Drop pidfiles whose process is not the service.
clear_stale_pidfiles() {
  local f pid name
  for f in /run/keystone/*.pid /run/glance/*.pid /run/placement/*.pid /run/neutron/*.pid /run/nova/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    name=$(basename "$f" .pid)
    case "$name" in nova-*) ;; *) name=$(basename "$(dirname "$f")") ;; esac
    if [ -z "$pid" ] || ! { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "$name"; then
      echo "stale pidfile $f (pid ${pid:-none} is not $name): removed"
      rm -f "$f"
    fi
  done
}
case "${1:-status}" in
clear-stale) clear_stale_pidfiles ;;
start)
  clear_stale_pidfiles
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
