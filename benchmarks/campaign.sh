#!/bin/bash
# Side-by-side comparison in one sitting: Parlour, ejabberd and Prosody measured with ../shared/bench.
# The shared bench is copied to a scratch folder (its results/ must be writable) and Parlour is added
# as a third "peer" started like the others: pinned to CPU 1, fresh state for every measurement
# (a 10 000-account database made once and copied), 50-login warm-up.
#   REPS=1 PEERS="parlour ejabberd prosody" benchmarks/campaign.sh
#   SERVER_CPU_QUOTA=50 MODES=login benchmarks/campaign.sh   # every server held to 50 % of one core
# SERVER_CPU_QUOTA (percent of one core, a cgroup CPU quota on the server's processes) takes the load
# generator out of the result: unthrottled, tsung cannot start much more than ~450 sessions/s on its one
# core, so the login peak measures tsung; held to the same quota, each server's peak is its own capacity.
# Capped results are labelled <peer>-cap<QUOTA> (override with SUFFIX).
# Prints the aggregated tables at the end (also: python3 $WORK/bench/aggregate.py $WORK/bench/results ...).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(dirname "$HERE")
SRC=${BENCH_SRC:-$REPO/../shared/bench}
WORK=${BENCH_WORK:-/tmp/parlour-bench}
PY=${PYTHON:-python3}
PARLOUR_PORT=15422
mkdir -p "$WORK"; rm -rf "$WORK/bench"; cp -r "$SRC" "$WORK/bench"; chmod -R u+w "$WORK/bench"
mkdir -p "$WORK/bench/results"
TEMPLATE="$WORK/parlour-template"
if [ ! -f "$TEMPLATE/parlour.db" ]; then   # accounts user1..user10000 / pass, made once (PBKDF2: ~1 min)
  timeout 300 "$PY" "$HERE/bench_server.py" --users 10000 --state "$TEMPLATE" --accounts-only
fi

sed -e "s|@PY@|$PY|g" -e "s|@REPO@|$REPO|g" -e "s|@TEMPLATE@|$TEMPLATE|g" -e "s|@PORT@|$PARLOUR_PORT|g" \
  > "$WORK/bench/peers/start-parlour.sh" <<'START'
#!/bin/bash
set -eu
ulimit -n "$(ulimit -Hn)"
rm -rf /tmp/bench-parlour; mkdir -p /tmp/bench-parlour; cp @TEMPLATE@/parlour.db* /tmp/bench-parlour/
setsid taskset -c 1 @PY@ @REPO@/benchmarks/bench_server.py --port @PORT@ --users 10000 \
  --state /tmp/bench-parlour > /tmp/bench-parlour/console.log 2>&1 < /dev/null &
echo $! > /tmp/bench-parlour/pid
for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/@PORT@) 2>/dev/null && exit 0; sleep 0.1; done
echo "parlour did not start" >&2; cat /tmp/bench-parlour/console.log >&2; exit 1
START
cat > "$WORK/bench/peers/stop-parlour.sh" <<'STOP'
#!/bin/bash
[ -f /tmp/bench-parlour/pid ] || exit 0
pid=$(cat /tmp/bench-parlour/pid); kill -TERM "$pid" 2>/dev/null || exit 0
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.2; done
kill -KILL "$pid" 2>/dev/null; exit 0
STOP
chmod +x "$WORK/bench/peers/start-parlour.sh" "$WORK/bench/peers/stop-parlour.sh"
sed -i "s/port_of() { case \$1 in /port_of() { case \$1 in parlour) echo $PARLOUR_PORT;; /" "$WORK/bench/campaign.sh"
export PEERS=${PEERS:-parlour ejabberd prosody} REPS=${REPS:-1}
if [ -n "${SERVER_CPU_QUOTA:-}" ]; then
  "$HERE/cpu_cap.sh" setup "$SERVER_CPU_QUOTA"
  export SUFFIX=${SUFFIX:--cap$SERVER_CPU_QUOTA}
  for peer in $PEERS; do   # each start script: start as before, then move the server into the cgroup
    start="$WORK/bench/peers/start-$peer.sh"; mv "$start" "$WORK/bench/peers/start-$peer.uncapped.sh"
    port=$(bash -c "$(grep '^port_of()' "$WORK/bench/campaign.sh"); port_of $peer")
    printf '#!/bin/bash\nset -e\n"%s" "$@"\n"%s" add-port %s\n' \
      "$WORK/bench/peers/start-$peer.uncapped.sh" "$HERE/cpu_cap.sh" "$port" > "$start"
    chmod +x "$start"
  done
fi
ulimit -n "$(ulimit -Hn)"
"$WORK/bench/campaign.sh"
labels=""; for peer in $PEERS; do labels="$labels $peer${SUFFIX:-}"; done
# shellcheck disable=SC2086
"$PY" "$WORK/bench/aggregate.py" "$WORK/bench/results" $labels
