#!/usr/bin/env bash
# Installs what pgherd's build, tests and demo need on Debian 12, when it is
# missing. Runs apt-get only as root and only for missing packages.
set -euo pipefail

packages=(postgresql-15 pgbackrest patroni python3-etcd etcd-server etcd-client systemd tmux python3-pysyncobj iproute2)
# The unprivileged account that runs PostgreSQL and Patroni when pgherd (or
# its tests) run as root: site.yaml's sysuser.
sysuser=${PGHERD_SYSUSER:-pgherd}
# The account of its own that DCS members run as when pgherd runs as root:
# site.yaml's patroni.dcs.embedded.sysuser. A PostgreSQL superuser (COPY ...
# TO PROGRAM runs as the account above) cannot read the members' keys.
dcsuser=${PGHERD_DCS_SYSUSER:-pgherd-dcs}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]}: run 'make deps' as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  # Debian's postgresql-common creates and starts a 15/main cluster on 5432
  # unless told not to.
  mkdir -p /etc/postgresql-common
  conf=/etc/postgresql-common/createcluster.conf
  if grep -qE '^\s*create_main_cluster' "$conf" 2>/dev/null; then
    sed -i -E 's/^\s*create_main_cluster.*/create_main_cluster = false/' "$conf"
  else
    echo 'create_main_cluster = false' >> "$conf"
  fi
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Stop a 15/main cluster that an earlier install may have started.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {found=1} END {exit !found}'; then
  if [ "$(id -u)" -eq 0 ]; then
    pg_lsclusters -h | awk '$4 == "online" {print $1, $2}' | while read -r v c; do
      echo "stopping Debian's cluster $v/$c"; pg_ctlcluster "$v" "$c" stop || true
    done
  fi
fi

if [ "$(id -u)" -eq 0 ] && ! id "$sysuser" >/dev/null 2>&1; then
  echo "creating system user $sysuser"
  useradd --system --create-home --home-dir "/var/lib/$sysuser-home" --shell /bin/bash "$sysuser"
fi
if [ "$(id -u)" -eq 0 ] && ! id "$dcsuser" >/dev/null 2>&1; then
  echo "creating system user $dcsuser"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$dcsuser"
fi
