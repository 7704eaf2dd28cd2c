#!/usr/bin/env bash
# A real, minimal, single-host OpenStack (Debian 12 "Zed" packages) on 127.0.0.1 for the
# stack push / stack run tests (adapted from shared/infra/openstack-setup.sh, ~5 min on a bare
# 2-core box, ~2 GB RSS idle):
#   MariaDB + RabbitMQ + Keystone + Glance + Placement + Nova (api, conductor, scheduler,
#   compute with libvirt virt_type=qemu i.e. TCG) + an API-only Neutron (no agents, no networks):
#   servers are booted with --nic none (compute API microversion >= 2.37).
# Needs: root, no systemd (services are started with their sysv init scripts), libvirt-setup.sh run.
# Idempotent: a machine that already has it all (a kept CI machine) only restarts what is down.
# Writes the credentials where the tests look: $STATE/clouds.yaml (cloud "capstan-ci") and
# $STATE/admin-openrc, STATE=${CAPSTAN_CI_STATE:-/var/lib/capstan-ci}.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PW=${CAPSTAN_CI_OS_PASSWORD:-secret}
STATE=${CAPSTAN_CI_STATE:-/var/lib/capstan-ci}
OPENRC=$STATE/admin-openrc
mkdir -p "$STATE"
export DEBIAN_FRONTEND=noninteractive
ts() { echo "[$(date +%T)] $*"; }

ts "install packages"
# keep the packages' postinst from starting half-configured services; we start them below
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
timeout 900 apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
  curl mariadb-server python3-pymysql rabbitmq-server \
  keystone glance python3-openstackclient placement-api \
  nova-api nova-conductor nova-scheduler nova-compute nova-compute-qemu neutron-server >/dev/null
rm -f /usr/sbin/policy-rc.d

bash "$HERE/services.sh" clear-stale

ts "start mariadb + rabbitmq"
/etc/init.d/mariadb start
/etc/init.d/rabbitmq-server start || true
for i in $(seq 1 60); do rabbitmqctl status >/dev/null 2>&1 && break; sleep 2; done
rabbitmqctl add_user openstack "$PW" 2>/dev/null || rabbitmqctl change_password openstack "$PW"
rabbitmqctl set_permissions openstack ".*" ".*" ".*"

ts "databases"
mysql -uroot <<SQL
CREATE DATABASE IF NOT EXISTS keystone; CREATE DATABASE IF NOT EXISTS glance;
CREATE DATABASE IF NOT EXISTS placement; CREATE DATABASE IF NOT EXISTS nova_api;
CREATE DATABASE IF NOT EXISTS nova; CREATE DATABASE IF NOT EXISTS nova_cell0;
CREATE DATABASE IF NOT EXISTS neutron;
CREATE USER IF NOT EXISTS 'os'@'localhost' IDENTIFIED BY '$PW';
CREATE USER IF NOT EXISTS 'os'@'127.0.0.1' IDENTIFIED BY '$PW';
GRANT ALL PRIVILEGES ON *.* TO 'os'@'localhost'; GRANT ALL PRIVILEGES ON *.* TO 'os'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
DB="mysql+pymysql://os:$PW@127.0.0.1"

# one worker per service: 2 cores, and the packages default to 8-16 uwsgi processes
for ini in /etc/keystone/keystone-uwsgi.ini /etc/glance/glance-api-uwsgi.ini \
           /etc/nova/nova-api-uwsgi.ini /etc/placement/placement-api-uwsgi.ini; do
  [ -f "$ini" ] && sed -i -e 's/^processes = .*/processes = 1/' -e 's/^threads = .*/threads = 4/' "$ini"
done
# nova-api is eventlet-based: more than 1 uwsgi thread per process deadlocks (a POST /servers hung)
sed -i -e 's/^processes = .*/processes = 2/' -e 's/^threads = .*/threads = 1/' /etc/nova/nova-api-uwsgi.ini
# Debian's uwsgi inis strip Content-Length (rem-header) and uwsgi's --http-socket closes the
# connection after each response: HTTP clients that keep connections alive then hit ECONNRESET on
# the next request (seen: `openstack server delete --wait`, POST /servers). Tell them to close.
for ini in /etc/keystone/keystone-uwsgi.ini /etc/nova/nova-api-uwsgi.ini /etc/placement/placement-api-uwsgi.ini \
           /etc/neutron/neutron-api-uwsgi.ini; do
  [ -f "$ini" ] && { grep -q '^add-header = Connection: close' "$ini" || sed -i 's/^rem-header = Content-Length$/&\nadd-header = Connection: close/' "$ini"; }
done

AUTHTOKEN() { # section body for keystonemiddleware
cat <<EOF
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:5000
auth_url = http://127.0.0.1:5000
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $PW
region_name = RegionOne
EOF
}

ts "keystone"
cat > /etc/keystone/keystone.conf <<EOF
[DEFAULT]
log_dir = /var/log/keystone
log_file = keystone.log
[database]
connection = $DB/keystone
[token]
provider = fernet
[catalog]
driver = sql
EOF
chown root:keystone /etc/keystone/keystone.conf; chmod 640 /etc/keystone/keystone.conf
su keystone -s /bin/sh -c 'keystone-manage db_sync'
keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
keystone-manage bootstrap --bootstrap-password "$PW" \
  --bootstrap-admin-url http://127.0.0.1:5000/v3/ --bootstrap-internal-url http://127.0.0.1:5000/v3/ \
  --bootstrap-public-url http://127.0.0.1:5000/v3/ --bootstrap-region-id RegionOne 2>/dev/null
chown -R keystone:keystone /var/log/keystone
/etc/init.d/keystone start
cat > $OPENRC <<EOF
export OS_USERNAME=admin OS_PASSWORD=$PW OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default OS_AUTH_URL=http://127.0.0.1:5000/v3 OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME=RegionOne OS_IMAGE_API_VERSION=2
EOF
. $OPENRC
for i in $(seq 1 60); do curl -sf http://127.0.0.1:5000/v3 >/dev/null && break; sleep 1; done
ts "keystone: service project, users, catalog"
# The project, users and catalog over Keystone's REST API in one process (the `openstack` CLI
# needed ~35 calls of 2-7 s each here).
python3 "$HERE/keystone-catalog.py" "$PW"

ts "glance"
cat > /etc/glance/glance-api.conf <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9292
workers = 1
log_dir = /var/log/glance
enabled_backends = fs:file
[database]
connection = $DB/glance
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = /var/lib/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = /var/lib/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = /var/lib/glance/tasks_work_dir/
[paste_deploy]
flavor = keystone
[oslo_concurrency]
lock_path = /var/lock/glance
$(AUTHTOKEN glance)
EOF
mkdir -p /var/lib/glance/images /var/lib/glance/staging /var/lib/glance/tasks_work_dir /var/lock/glance
chown -R glance:glance /var/lib/glance /var/lock/glance /var/log/glance
su glance -s /bin/sh -c 'glance-manage db_sync' >/dev/null
/etc/init.d/glance-api start

ts "placement"
cat > /etc/placement/placement.conf <<EOF
[DEFAULT]
log_dir = /var/log/placement
[placement_database]
connection = $DB/placement
[api]
auth_strategy = keystone
$(AUTHTOKEN placement)
EOF
chown -R placement:placement /var/log/placement 2>/dev/null || true
su placement -s /bin/sh -c 'placement-manage db sync'
/etc/init.d/placement-api start

ts "neutron (API only: nova-api's GET /servers/{id} lists ports/security groups in Neutron)"
cat > /etc/neutron/neutron.conf <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = keystone
transport_url = rabbit://openstack:$PW@127.0.0.1:5672/
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
api_workers = 1
rpc_workers = 0
log_dir = /var/log/neutron
[database]
connection = $DB/neutron
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:5000
auth_url = http://127.0.0.1:5000
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = neutron
password = $PW
region_name = RegionOne
[oslo_concurrency]
lock_path = /var/lock/neutron
[agent]
root_helper = sudo neutron-rootwrap /etc/neutron/rootwrap.conf
EOF
cat > /etc/neutron/plugins/ml2/ml2_conf.ini <<EOF
[ml2]
type_drivers = flat
tenant_network_types =
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_flat]
flat_networks = *
[securitygroup]
enable_security_group = true
EOF
chown root:neutron /etc/neutron/neutron.conf /etc/neutron/plugins/ml2/ml2_conf.ini
sed -i -e 's/^processes = .*/processes = 1/' -e 's/^threads = .*/threads = 1/' /etc/neutron/neutron-api-uwsgi.ini
mkdir -p /var/lock/neutron /var/log/neutron; chown neutron:neutron /var/lock/neutron /var/log/neutron
su neutron -s /bin/sh -c 'neutron-db-manage --config-file /etc/neutron/neutron.conf --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade head' > /var/log/neutron/db-manage.log 2>&1
/etc/init.d/neutron-api start
for i in $(seq 1 60); do curl -sf http://127.0.0.1:9696/ >/dev/null && break; sleep 1; done
# Zed bug: the first GET /v2.0/ports?fields=... in a fresh neutron-api worker fails with
# "AttributeError: type object 'Port' has no attribute 'port_forwardings'" (SQLAlchemy backref not
# configured yet) -> nova-api 500. Any other query first (network list) configures the mappers.
# Repeat after every neutron-api (re)start.
python3 "$HERE/keystone-catalog.py" "$PW" --get http://127.0.0.1:9696/v2.0/networks

ts "nova"
cat > /etc/nova/nova.conf <<EOF
[DEFAULT]
my_ip = 127.0.0.1
state_path = /var/lib/nova
log_dir = /var/log/nova
transport_url = rabbit://openstack:$PW@127.0.0.1:5672/
compute_driver = libvirt.LibvirtDriver
osapi_compute_workers = 1
metadata_workers = 1
# no Neutron here: stop the periodic task that would ask it for port info
heal_instance_info_cache_interval = -1
# booting is slow under TCG on 2 cores
instance_build_timeout = 0
[api]
auth_strategy = keystone
[api_database]
connection = $DB/nova_api
[database]
connection = $DB/nova
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 30
[glance]
api_servers = http://127.0.0.1:9292
[oslo_concurrency]
lock_path = /var/lib/nova/tmp
[libvirt]
virt_type = qemu
cpu_mode = none
[vnc]
enabled = false
[spice]
enabled = false
[serial_console]
enabled = false
[service_user]
send_service_user_token = true
auth_url = http://127.0.0.1:5000/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = nova
password = $PW
[placement]
region_name = RegionOne
auth_url = http://127.0.0.1:5000/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = placement
password = $PW
[neutron]
auth_type = password
auth_url = http://127.0.0.1:5000/v3
project_domain_name = Default
user_domain_name = Default
region_name = RegionOne
project_name = service
username = neutron
password = $PW
$(AUTHTOKEN nova)
EOF
printf '[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n[libvirt]\nvirt_type = qemu\ncpu_mode = none\n' > /etc/nova/nova-compute.conf
chown root:nova /etc/nova/nova.conf /etc/nova/nova-compute.conf; chmod 640 /etc/nova/nova.conf /etc/nova/nova-compute.conf
mkdir -p /var/lib/nova/tmp /var/lib/nova/instances; chown -R nova:nova /var/lib/nova /var/log/nova
su nova -s /bin/sh -c 'nova-manage api_db sync'
su nova -s /bin/sh -c 'nova-manage cell_v2 map_cell0' || true
cells=$(su nova -s /bin/sh -c 'nova-manage cell_v2 list_cells')
grep -q ' cell1 ' <<<"$cells" ||
  su nova -s /bin/sh -c 'nova-manage cell_v2 create_cell --name=cell1 --verbose'
su nova -s /bin/sh -c 'nova-manage db sync'
for s in nova-api nova-conductor nova-scheduler nova-compute; do /etc/init.d/$s start; done

ts "wait for the compute service and its resource provider"
for i in $(seq 1 90); do
  state=$(openstack compute service list --service nova-compute -f value -c State 2>/dev/null || true)
  grep -q up <<<"$state" && break; sleep 2
done
su nova -s /bin/sh -c 'nova-manage cell_v2 discover_hosts --verbose'
for i in $(seq 1 60); do
  ids=$(openstack hypervisor list -f value -c ID 2>/dev/null || true)
  grep -q . <<<"$ids" && break; sleep 2
done
# Two flavors, so that picking "the smallest that fits" has a choice to make.
openstack flavor show osv.tiny >/dev/null 2>&1 || openstack flavor create --ram 256 --disk 1 --vcpus 1 osv.tiny >/dev/null
openstack flavor show osv.small >/dev/null 2>&1 || openstack flavor create --ram 512 --disk 2 --vcpus 1 osv.small >/dev/null
openstack compute service list
# Every service must answer, not only have been started: a test run against half a cloud fails
# where it should have skipped (the caller removes clouds.yaml when this script fails).
for i in $(seq 1 60); do
  down=$(openstack compute service list -f value -c Binary -c State 2>/dev/null | awk '$2 != "up" { print $1 }' || true)
  curl -sf http://127.0.0.1:9292/versions >/dev/null || down="$down glance-api"
  curl -sf http://127.0.0.1:8778/ >/dev/null || down="$down placement-api"
  [ -z "${down// /}" ] && break
  sleep 2
done
if [ -n "${down// /}" ]; then ts "not answering: $down"; exit 1; fi
cat > "$STATE/clouds.yaml" <<EOF
# Written by .ci/openstack-setup.sh: the OpenStack the stack tests run against.
clouds:
  capstan-ci:
    auth:
      auth_url: http://127.0.0.1:5000/v3
      username: admin
      password: $PW
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
EOF
chmod 600 "$STATE/clouds.yaml" "$OPENRC"
ts "done"
