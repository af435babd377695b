#!/usr/bin/env bash
# The main job on one machine: create, start and describe a local instance.
# As root, PostgreSQL runs as the account 'make deps' created (sysuser).
set -euo pipefail
cd "$(dirname "$0")/.."
pgherd=bin/pgherd
if [ "$(id -u)" -eq 0 ]; then
  export PGHERD_SYSUSER=${PGHERD_SYSUSER:-pgherd}
fi
export PGHERD_SERVICE_MANAGER=${PGHERD_SERVICE_MANAGER:-auto}

set -x
if $pgherd instance get demo >/dev/null 2>&1; then
  $pgherd instance status demo || $pgherd instance start demo
else
  $pgherd instance create demo
fi
$pgherd instance list
$pgherd instance get demo -o json
$pgherd instance exec demo -- psql -c 'select version()'
{ set +x; } 2>/dev/null
echo
echo "Done. Try: $pgherd instance env demo; $pgherd instance logs demo; $pgherd instance drop demo --yes"
