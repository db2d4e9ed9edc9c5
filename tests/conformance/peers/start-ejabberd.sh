#!/bin/bash
# Start a private ejabberd (Debian package) for the conformance suite, on loopback only, as the
# invoking user. Adapted from ../shared/bench/peers/start-ejabberd.sh with its own ports and folder:
#   EJABBERD_PORT (25222)  EJABBERD_DIST_PORT (25100)  EJABBERD_NODE (confejd@localhost)
#   EJABBERD_BASE (/tmp/conf-ejabberd)  DOMAIN (conformance.local)  PASSWORD (secret-pass)
#   USERS ("alice bob carol dave")
# Wipes $EJABBERD_BASE/spool on each start; writes the beam PID to $EJABBERD_BASE/ejabberd.pid.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${EJABBERD_PORT:-25222}
DIST_PORT=${EJABBERD_DIST_PORT:-25100}
NODE=${EJABBERD_NODE:-confejd@localhost}
BASE=${EJABBERD_BASE:-/tmp/conf-ejabberd}
DOMAIN=${DOMAIN:-conformance.local}
PASSWORD=${PASSWORD:-secret-pass}
USERS=${USERS:-alice bob carol dave}

case "$BASE" in /tmp/conf-*) ;; *) echo "EJABBERD_BASE must be under /tmp/conf-*" >&2; exit 2;; esac
if [ -f "$BASE/ejabberd.pid" ] && kill -0 "$(cat "$BASE/ejabberd.pid")" 2>/dev/null; then
  echo "ejabberd already running (pid $(cat "$BASE/ejabberd.pid"))" >&2; exit 1
fi
rm -rf "$BASE/spool"
mkdir -p "$BASE/spool" "$BASE/log" "$BASE/etc"
rm -f "$BASE/ejabberd.pid"; : > "$BASE/etc/inetrc"
sed -e "s/@PORT@/$PORT/g" -e "s/@DOMAIN@/$DOMAIN/g" "$HERE/ejabberd.yml.in" > "$BASE/etc/ejabberd.yml"
cat > "$BASE/etc/ejabberdctl.cfg" <<CFG
ERLANG_NODE=$NODE
ERL_DIST_PORT=$DIST_PORT
INET_DIST_INTERFACE=127.0.0.1
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH=$BASE/ejabberd.pid
EJABBERD_BYPASS_WARNINGS=true
CFG
sed 's/^INSTALLUSER=ejabberd$/INSTALLUSER=/' /usr/sbin/ejabberdctl > "$BASE/ejabberdctl"
chmod +x "$BASE/ejabberdctl"
cat > "$BASE/ctl" <<CTL
#!/bin/bash
exec "$BASE/ejabberdctl" --config-dir "$BASE/etc" --config "$BASE/etc/ejabberd.yml" \\
  --ctl-config "$BASE/etc/ejabberdctl.cfg" --logs "$BASE/log" --spool "$BASE/spool" "\$@"
CTL
chmod +x "$BASE/ctl"

( cd "$BASE" && exec setsid "$BASE/ctl" foreground-quiet > "$BASE/log/console.log" 2>&1 < /dev/null ) &
for i in $(seq 1 60); do
  sleep 1
  if "$BASE/ctl" status >/dev/null 2>&1; then break; fi
  [ "$i" = 60 ] && { echo "ejabberd did not start; see $BASE/log" >&2; exit 1; }
done
# Accounts through one hidden Erlang node (ejabberdctl register boots a VM per user).
NAMES=$(printf '<<"%s">>,' $USERS); NAMES="[${NAMES%,}]"
timeout 120 erl -sname "confreg$$@localhost" -hidden -noinput -erl_epmd_port "$DIST_PORT" -start_epmd false \
  -dist_listen false -eval "
    N = '$NODE', D = <<\"$DOMAIN\">>, P = <<\"$PASSWORD\">>,
    [ok = rpc:call(N, ejabberd_auth, try_register, [U, D, P]) || U <- $NAMES],
    halt()." >/dev/null
echo "ejabberd up: pid $(cat "$BASE/ejabberd.pid") on 127.0.0.1:$PORT"
