#!/bin/bash
# Side-by-side comparison in one sitting: Parlour, ejabberd and Prosody measured with ../shared/bench.
# The shared bench is copied to a scratch folder (its results/ must be writable) and Parlour is added
# as a third "peer" started like the others: pinned to CPU 1, fresh state for every measurement
# (a 10 000-account database made once and copied), 50-login warm-up.
#   REPS=1 PEERS="parlour ejabberd prosody" benchmarks/campaign.sh
#   SERVER_CPU_QUOTA=50 MODES=login benchmarks/campaign.sh   # every server held to 50 % of one core
#   TLS=1 MODES="login msg" PEERS="parlour ejabberd prosody relay" benchmarks/campaign.sh   # STARTTLS on
# PEERS may include "relay": the shared bench's floor (ceiling/relay.py: no parser, no TLS, no storage),
# started like the others; with TLS=1 it runs as benchmarks/relay_tls.py (the same relay plus STARTTLS).
# PEERS may include "relay-lxml" (benchmarks/relay_lxml.py, plain only): the relay plus lxml parsing, stamping
# and serializing each message, the floor of any server that parses its stanzas with lxml.
# TLS=1 (benchmarks/tls_variant.py) makes every client do STARTTLS after the first stream header, for
# every server; results are labelled <peer>-tls (override with SUFFIX).
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
RELAY_PORT=15522
RELAY_LXML_PORT=15622
if [ "${TLS:-0}" = 1 ] && [[ " ${PEERS:-} " == *" relay-lxml "* ]]; then
  echo "campaign.sh: relay-lxml has no TLS variant; leave it out of PEERS with TLS=1" >&2; exit 2
fi
mkdir -p "$WORK"; rm -rf "$WORK/bench"; cp -r "$SRC" "$WORK/bench"; chmod -R u+w "$WORK/bench"
mkdir -p "$WORK/bench/results"
if [ "${TLS:-0}" = 1 ]; then   # one certificate for every server (bench only: a throwaway key, world-readable)
  TLSDIR=/tmp/bench-tls; mkdir -p "$TLSDIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=bench.local \
    -addext subjectAltName=DNS:bench.local -keyout "$TLSDIR/key.pem" -out "$TLSDIR/cert.pem" 2>/dev/null
  chmod 644 "$TLSDIR/key.pem" "$TLSDIR/cert.pem"
  "$PY" "$HERE/tls_variant.py" "$WORK/bench" "$TLSDIR/cert.pem" "$TLSDIR/key.pem"
  export SUFFIX=${SUFFIX:--tls}
  RELAY_CMD="$PY $HERE/relay_tls.py $WORK/bench/ceiling $RELAY_PORT bench.local $TLSDIR/cert.pem $TLSDIR/key.pem"
else
  RELAY_CMD="$PY $WORK/bench/ceiling/relay.py $RELAY_PORT bench.local"
fi
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
local_peer() {   # NAME PORT COMMAND...: start/stop scripts for a Python floor started like the servers
  local name=$1 port=$2; shift 2
  cat > "$WORK/bench/peers/start-$name.sh" <<START
#!/bin/bash
mkdir -p /tmp/bench-$name
setsid taskset -c 1 $* > /tmp/bench-$name/console.log 2>&1 < /dev/null &
echo \$! > /tmp/bench-$name/pid
for _ in \$(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && exit 0; sleep 0.1; done
echo "$name did not start" >&2; cat /tmp/bench-$name/console.log >&2; exit 1
START
  sed -e "s|/tmp/bench-parlour|/tmp/bench-$name|g" "$WORK/bench/peers/stop-parlour.sh" > "$WORK/bench/peers/stop-$name.sh"
  chmod +x "$WORK/bench/peers/start-$name.sh" "$WORK/bench/peers/stop-$name.sh"
}
local_peer relay "$RELAY_PORT" $RELAY_CMD
local_peer relay-lxml "$RELAY_LXML_PORT" "$PY" "$HERE/relay_lxml.py" "$WORK/bench/ceiling" "$RELAY_LXML_PORT" bench.local
sed -i "s/port_of() { case \$1 in /port_of() { case \$1 in parlour) echo $PARLOUR_PORT;; relay) echo $RELAY_PORT;; relay-lxml) echo $RELAY_LXML_PORT;; /" \
  "$WORK/bench/campaign.sh"
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
