#!/bin/bash
# make bench: how long the process manager takes to bring a DCS member
# killed with SIGKILL back to healthy (`pgherd dcs status` answers: it
# follows a leader), and what its supervisor costs (RSS, CPU while idle).
# Each round restarts the member first, so that each kill meets a fresh
# supervisor's first restart (restart.delay), not the backoff.
set -eu
B=$(cd "$(dirname "$0")/.." && pwd)/bin
W=$(mktemp -d); chmod 755 $W
trap '$B/pgherd dcs stop m1 >/dev/null 2>&1 || true; rm -rf $W' EXIT
printf 'prefix: %s/prefix\nrun_prefix: %s/run\nservice_manager: process\n' $W $W > $W/site.yaml
export PGHERD_SITE=$W/site.yaml
p1=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
p2=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
$B/pgherd dcs init --name m1 --listen-peer 127.0.0.1:$p1 --listen-client 127.0.0.1:$p2 >/dev/null
for i in 1 2 3 4 5; do
  $B/pgherd dcs restart m1 >/dev/null 2>&1   # a fresh supervisor: its first restart
  t0=$(date +%s.%N); kill -KILL $(cat $W/run/pid/dcs/m1.pid)
  until $B/pgherd dcs status m1 >/dev/null 2>&1; do sleep 0.02; done
  t1=$(date +%s.%N); echo "dcs member killed -9, back to healthy: $(echo "$t1 - $t0" | bc) s"
done
sup=$(cat $W/run/pid/dcs/m1.supervisor.pid)
t0=$(awk '{print $14+$15}' /proc/$sup/stat); sleep 5; t1=$(awk '{print $14+$15}' /proc/$sup/stat)
echo "supervisor: $(awk '/VmRSS/{print $2, $3}' /proc/$sup/status) RSS, $((t1 - t0)) CPU ticks in 5 s idle"
