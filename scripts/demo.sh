#!/usr/bin/env bash
# The reason pgherd exists, on one machine: two PostgreSQL instances under
# Patroni on pgherd's embedded DCS, plus a witness as the third vote, all
# listening on 127.0.1.1 (Patroni refuses 127.0.0.1 in connect addresses).
# As root, PostgreSQL and Patroni run as the account 'make deps' created.
set -euo pipefail
cd "$(dirname "$0")/.."
pgherd=bin/pgherd
if [ "$(id -u)" -eq 0 ]; then
  export PGHERD_SYSUSER=${PGHERD_SYSUSER:-pgherd}
fi
export PGHERD_SERVICE_MANAGER=${PGHERD_SERVICE_MANAGER:-auto}
host=127.0.1.1

set -x
# The first instance starts the DCS; the second joins it (through the
# member on this host); each data member is in its own zone.
$pgherd instance get demo1 >/dev/null 2>&1 ||
  $pgherd instance create demo1 --patroni-cluster demo --patroni-postgresql-connect-host $host \
    --dcs-listen-peer $host:2380 --dcs-listen-client $host:2379 --dcs-zone a
$pgherd instance get demo2 >/dev/null 2>&1 ||
  $pgherd instance create demo2 --patroni-cluster demo --patroni-postgresql-connect-host $host \
    --dcs-listen-peer $host:2382 --dcs-listen-client $host:2381 --dcs-zone b
# The witness: a third DCS voter in a third zone, with no PostgreSQL.
$pgherd witness status w1 >/dev/null 2>&1 ||
  $pgherd witness add w1 --peer $host:2380 --listen-peer $host:2384 --listen-client $host:2383 --zone c
$pgherd patroni list demo1
$pgherd witness list
$pgherd witness check
{ set +x; } 2>/dev/null
echo
[ "$(id -u)" -eq 0 ] && pgherd="PGHERD_SYSUSER=$PGHERD_SYSUSER $pgherd"
echo "Done. Try: $pgherd dcs members --peer $host:2380; $pgherd witness status w1"
echo "Clean up: $pgherd witness remove w1 --yes; $pgherd instance drop demo2 --yes; $pgherd instance drop demo1 --yes"
