#!/bin/bash
# Profile the bench server (benchmarks/bench_server.py) under the shared bench's tsung message run, where
# every message arrives in its own read and leaves in its own write (the in-process profile_messages.py
# sends bursts, which hides the per-read and per-write costs).
#   pip install py-spy   # into the venv that runs the server; not a project dependency
#   PYTHON=.venv/bin/python benchmarks/profile_tsung.sh [RATE_PER_USER=2] [OUT=/tmp/parlour-profile]
# Starts the server pinned to CPU 1 with fresh state, runs the msg scenario at one per-user rate
# (1,000 users: RATE=2 is 2,000 msg/s) for MSG_STEP (60) seconds, and during the message phase:
#   py-spy (SAMPLE_SECONDS=25 of samples; $OUT/pyspy.txt collapsed stacks, $OUT/top.txt self and total time),
#   or with PERF=1 perf instead: $OUT/perf-stat.txt (CPU time user/system, context switches, syscalls) and
#   $OUT/perf-trace.txt (count and time per syscall); TARGET=relay measures the bench's floor the same way;
#   or with STRACE=1 every system call of every thread for 2 s with timestamps ($OUT/strace.txt: the order
#   of reads, writes and epoll waits; strace slows the server, so its figures mean nothing).
#   NATIVE=1 adds C frames to py-spy's stacks (py-spy must then pause the process: no --nonblocking).
# The tsung summary (server CPU µs/msg at that rate, less meaningful while sampled) is in $OUT/summary.txt.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
PY=${PYTHON:-python3}
RATE=${1:-2}; OUT=${2:-/tmp/parlour-profile}
SRC=${BENCH_SRC:-$REPO/../shared/bench}
PORT=${PORT:-15422}; SAMPLE_SECONDS=${SAMPLE_SECONDS:-25}
TEMPLATE=${TEMPLATE:-/tmp/parlour-bench/parlour-template}
rm -rf "$OUT"; mkdir -p "$OUT"; cp -r "$SRC" "$OUT/bench"; chmod -R u+w "$OUT/bench"
if [ ! -f "$TEMPLATE/parlour.db" ]; then
  timeout 300 "$PY" "$HERE/bench_server.py" --users 10000 --state "$TEMPLATE" --accounts-only
fi
mkdir -p "$OUT/state"; cp "$TEMPLATE"/parlour.db* "$OUT/state/"
ulimit -n "$(ulimit -Hn)"
if [ "${TARGET:-parlour}" = relay ]; then
  setsid taskset -c 1 "$PY" "$OUT/bench/ceiling/relay.py" "$PORT" bench.local > "$OUT/server.log" 2>&1 < /dev/null &
else
  setsid taskset -c 1 "$PY" "$HERE/bench_server.py" --port "$PORT" --users 10000 --state "$OUT/state" \
    > "$OUT/server.log" 2>&1 < /dev/null &
fi
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done
python3 "$OUT/bench/smoke.py" 127.0.0.1 "$PORT" bench.local user pass 50
# Logins take ~20 s (1,000 at 200/s, then the scenario's wait); sample well inside the message phase.
(
  sleep 30
  if [ "${STRACE:-0}" = 1 ]; then   # the sequence of system calls, every thread, for 2 s
    timeout -s INT 2 strace -f -tt -p "$SERVER" -o "$OUT/strace.txt" > /dev/null 2>&1 || true
  elif [ "${PERF:-0}" = 1 ]; then
    perf stat -e task-clock,context-switches,cpu-migrations,page-faults,raw_syscalls:sys_enter -p "$SERVER" \
      -o "$OUT/perf-stat.txt" -- sleep "$SAMPLE_SECONDS" || true
    timeout -s INT 10 perf trace -s -p "$SERVER" -o "$OUT/perf-trace.txt" > /dev/null 2>&1 || true
  else
    nonblocking=--nonblocking; [ -n "${NATIVE:-}" ] && nonblocking=""   # C frames need the process paused
    "$(dirname "$PY")/py-spy" record --pid "$SERVER" --duration "$SAMPLE_SECONDS" $nonblocking --rate 200 \
      --format raw --output "$OUT/pyspy.txt" ${NATIVE:+--native} > "$OUT/pyspy.log" 2>&1 || true
    "$PY" "$HERE/pyspy_top.py" "$OUT/pyspy.txt" > "$OUT/top.txt" || true
  fi
) &
SAMPLER=$!
MSG_RATES="$RATE" MSG_STEP=${MSG_STEP:-60} OUTROOT="$OUT/results" LABEL=profile \
  "$OUT/bench/run.sh" msg 127.0.0.1 "$PORT" bench.local > "$OUT/summary.txt" 2>&1 || true
wait "$SAMPLER" || true
tail -3 "$OUT/summary.txt"
[ -f "$OUT/top.txt" ] && head -60 "$OUT/top.txt"
[ -f "$OUT/perf-stat.txt" ] && cat "$OUT/perf-stat.txt" && grep -E "^ +[a-z_0-9]+ +[0-9]+ " "$OUT/perf-trace.txt" | head -12
exit 0
