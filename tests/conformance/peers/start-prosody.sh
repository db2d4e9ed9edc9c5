#!/bin/bash
# Start a private Prosody (Debian package) for the conformance suite, on loopback only.
# Adapted from ../shared/bench/peers/start-prosody.sh with its own port and folder:
#   PROSODY_PORT (25322)  PROSODY_BASE (/tmp/conf-prosody)  DOMAIN (conformance.local)
#   PASSWORD (secret-pass)  USERS ("alice bob carol dave")
# Wipes $PROSODY_BASE/data on each start; writes the PID to $PROSODY_BASE/prosody.pid.
# Accounts are written as internal_plain .dat files (what `prosodyctl register` writes).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${PROSODY_PORT:-25322}
BASE=${PROSODY_BASE:-/tmp/conf-prosody}
DOMAIN=${DOMAIN:-conformance.local}
PASSWORD=${PASSWORD:-secret-pass}
USERS=${USERS:-alice bob carol dave}

case "$BASE" in /tmp/conf-*) ;; *) echo "PROSODY_BASE must be under /tmp/conf-*" >&2; exit 2;; esac
if [ -f "$BASE/prosody.pid" ] && kill -0 "$(cat "$BASE/prosody.pid")" 2>/dev/null; then
  echo "prosody already running (pid $(cat "$BASE/prosody.pid"))" >&2; exit 1
fi
rm -rf "$BASE/data"
mkdir -p "$BASE/data" "$BASE/certs"
rm -f "$BASE/prosody.pid" "$BASE/admin.sock"
sed -e "s/@PORT@/$PORT/g" -e "s/@DOMAIN@/$DOMAIN/g" -e "s|@BASE@|$BASE|g" \
  "$HERE/prosody.cfg.lua.in" > "$BASE/prosody.cfg.lua"
ENC_HOST=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="").replace(".","%2e").replace("-","%2d"))' "$DOMAIN")
mkdir -p "$BASE/data/$ENC_HOST/accounts"
for u in $USERS; do
  printf 'return {\n\t["password"] = "%s";\n};\n' "$PASSWORD" > "$BASE/data/$ENC_HOST/accounts/$u.dat"
done

( cd "$BASE" && exec setsid prosody --config "$BASE/prosody.cfg.lua" -F > "$BASE/console.log" 2>&1 < /dev/null ) &
for i in $(seq 1 60); do
  sleep 0.5
  if [ -s "$BASE/prosody.pid" ] && ss -ltn "sport = :$PORT" | grep -q LISTEN; then break; fi
  [ "$i" = 60 ] && { echo "prosody did not start; see $BASE/console.log" >&2; exit 1; }
done
echo "prosody up: pid $(cat "$BASE/prosody.pid") on 127.0.0.1:$PORT"
