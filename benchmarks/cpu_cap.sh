#!/bin/bash
# Hold benchmark servers to a share of one core with a cgroup CPU quota (cgroup v1 "cpu" or v2).
#   cpu_cap.sh setup PERCENT     create/adjust the group "parlour-bench-cap" (PERCENT of one core)
#   cpu_cap.sh add-port PORT     move the process listening on 127.0.0.1:PORT, and its descendants, into it
# Needs root (or a delegated cgroup). Refuses clearly when no CPU controller is mounted.
set -eu
NAME=parlour-bench-cap
PERIOD=100000
if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
  GROUP=/sys/fs/cgroup/$NAME; V=2
elif [ -d /sys/fs/cgroup/cpu ]; then
  GROUP=/sys/fs/cgroup/cpu/$NAME; V=1
else
  echo "cpu_cap: no cgroup CPU controller here (looked for cgroup v2 and v1 'cpu')" >&2; exit 2
fi
case "${1:-}" in
setup)
  percent=${2:?percent of one core}
  case "$percent" in ''|*[!0-9]*) echo "cpu_cap: PERCENT must be a whole number" >&2; exit 2;; esac
  mkdir -p "$GROUP"
  quota=$((percent * PERIOD / 100))
  if [ $V = 2 ]; then echo "$quota $PERIOD" > "$GROUP/cpu.max"
  else echo "$PERIOD" > "$GROUP/cpu.cfs_period_us"; echo "$quota" > "$GROUP/cpu.cfs_quota_us"; fi
  echo "cpu_cap: $GROUP limited to $percent % of one core" ;;
add-port)
  port=${2:?port}
  pid=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  [ -n "$pid" ] || { echo "cpu_cap: nothing listens on port $port" >&2; exit 1; }
  todo=("$pid"); n=0
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}; todo=("${todo[@]:1}")
    echo "$p" > "$GROUP/cgroup.procs"; n=$((n + 1))
    for child in $(pgrep -P "$p" || true); do todo+=("$child"); done
  done
  echo "cpu_cap: $n process(es) of port $port in $GROUP" ;;
*) echo "usage: cpu_cap.sh setup PERCENT | add-port PORT" >&2; exit 2 ;;
esac
