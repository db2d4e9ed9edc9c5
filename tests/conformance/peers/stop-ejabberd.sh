#!/bin/bash
# Stop the conformance ejabberd started by start-ejabberd.sh (by PID file only).
BASE=${EJABBERD_BASE:-/tmp/conf-ejabberd}
PIDF="$BASE/ejabberd.pid"
[ -f "$PIDF" ] || { echo "no pid file $PIDF"; exit 0; }
PID=$(cat "$PIDF")
if ! kill -0 "$PID" 2>/dev/null; then rm -f "$PIDF"; exit 0; fi
timeout 30 "$BASE/ctl" stop >/dev/null 2>&1 || true
for i in $(seq 1 30); do kill -0 "$PID" 2>/dev/null || break; sleep 1; done
if kill -0 "$PID" 2>/dev/null; then kill "$PID"; sleep 2; fi
kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
rm -f "$PIDF"; echo "ejabberd (pid $PID) stopped"
