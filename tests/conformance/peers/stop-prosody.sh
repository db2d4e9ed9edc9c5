#!/bin/bash
# Stop the conformance Prosody started by start-prosody.sh (by PID file only).
BASE=${PROSODY_BASE:-/tmp/conf-prosody}
PIDF="$BASE/prosody.pid"
[ -f "$PIDF" ] || { echo "no pid file $PIDF"; exit 0; }
PID=$(cat "$PIDF")
if ! kill -0 "$PID" 2>/dev/null; then rm -f "$PIDF"; exit 0; fi
kill "$PID"
for i in $(seq 1 30); do kill -0 "$PID" 2>/dev/null || break; sleep 1; done
kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
rm -f "$PIDF"; echo "prosody (pid $PID) stopped"
