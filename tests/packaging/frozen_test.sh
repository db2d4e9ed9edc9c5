#!/bin/sh
# Smoke test of the frozen executable on the build host: version, check config, setup mode with the
# packaged parlour.toml (the wizard's templates, static files and translations are inside), `run --dev`
# in a temporary folder, `user add`, a client login (STARTTLS + SASL PLAIN + bind) and the web chat. Called by
# `make dist-test`. Runs in a private network namespace (unshare -n, needs root) so the fixed
# development ports cannot clash with anything on the host; prints start-up timings.
#
#   tests/packaging/frozen_test.sh [dist/parlour]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$(dirname "${1:-$ROOT/dist/parlour}")" && pwd)/$(basename "${1:-$ROOT/dist/parlour}")
test -x "$BIN" || { echo "no $BIN; run make dist" >&2; exit 1; }
if [ -z "${PARLOUR_IN_NETNS:-}" ]; then
    exec env PARLOUR_IN_NETNS=1 unshare -n sh -c 'ip link set lo up && exec "$0" "$@"' "$0" "$BIN"
fi
. "$ROOT/tests/packaging/lib.sh"
PY=$(command -v python3)
LOGIN="$ROOT/tests/packaging/xmpp_login.py"
W=$(mktemp -d "${TMPDIR:-/tmp}/parlour-frozen.XXXXXX")
SERVER=
trap 'stop_bg "$SERVER"; rm -rf "$W"' EXIT INT TERM
cd "$W"
# The one-file build unpacks into its cache folder, not /tmp (temp cleaners age /tmp under a long-running
# server): here $XDG_CACHE_HOME/parlour, so the test leaves nothing in the host's /var/cache.
unset TMPDIR
export XDG_CACHE_HOME=$W/cache
# new_in_tmp [-mindepth 1]: what one-file runs started after $W/started put into /tmp or /var/tmp.
new_in_tmp() { find /tmp /var/tmp -maxdepth 1 -name '_MEI*' -newer "$W/started" -exec find {} "$@" \; 2>/dev/null; }

echo "== $BIN ($(stat -c %s "$BIN") bytes)"
step "version, check config"
check "version says $APP_VERSION (and nothing else: no bootloader warning)" test "$("$BIN" version 2>&1)" = "parlour $APP_VERSION"
out=$("$BIN" check config --config "$ROOT/packaging/parlour.toml" 2>&1) && rc=0 || rc=$?
check "check config on packaging/parlour.toml exits 1 (was $rc)" test "$rc" = 1
contains "check config: not set up yet" "$out" '^FAIL config .*parlour.toml: not set up yet: open the wizard'

step "setup mode (the packaged parlour.toml): the wizard's page, static files and German catalogue"
mkdir "$W/setup"
{ cat "$ROOT/packaging/parlour.toml"; printf '\n[server]\nstate_dir = "state"\n'; } > "$W/setup/parlour.toml"
"$BIN" run --config "$W/setup/parlour.toml" >"$W/setup.log" 2>&1 &
SERVER=$!
i=0
until url=$(grep -o 'http://[^ ]*:5280/setup?token=[A-Za-z0-9_-]*' "$W/setup.log" | head -1) && [ -n "$url" ]; do
    i=$((i + 1)); [ $i -lt 150 ] && kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1
done
contains "prints Open http://...:5280/setup?token=" "$(cat "$W/setup.log")" '  Open http://.*:5280/setup?token='
check "GET /setup?token= -> the wizard's first step; css, js, ?lang=de" "$PY" "$ROOT/tests/packaging/wizard_walk.py" "$url" --assets
stop_bg "$SERVER"; SERVER=

step "run --dev until port 5222 answers"
touch "$W/started"; sleep 0.01
"$BIN" run --dev >"$W/run.log" 2>&1 &
SERVER=$!
t0=$(date +%s.%N)
i=0
while ! "$PY" "$LOGIN" 127.0.0.1 5222 localhost >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 150 ] || ! kill -0 "$SERVER" 2>/dev/null; then
        fail "server did not start"; sed 's/^/        /' "$W/run.log"; total; exit 1
    fi
    sleep 0.1
done
ok "listening after $(printf '%.2f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"
unpacked=$(ls -d "$XDG_CACHE_HOME"/parlour/_MEI* 2>/dev/null || true)
check "unpacked under the cache folder ($unpacked)" test -n "$unpacked"
check "cache folder is private (700)" test "$(stat -c %a "$XDG_CACHE_HOME/parlour")" = 700
check "nothing of it left in /tmp or /var/tmp (the first unpack emptied)" test -z "$(new_in_tmp -mindepth 1)"

step "user add, client login"
check "user add alice@localhost" sh -c "echo frozen-test-password | '$BIN' user add alice@localhost --dev"
check "alice logs in" "$PY" "$LOGIN" 127.0.0.1 5222 localhost alice frozen-test-password
chat=$(curl -sk https://127.0.0.1:5443/chat) || chat=
contains "the web chat page at https://...:5443/chat" "$chat" 'id="parlour-chat"'
check "the web chat's Converse.js is inside: /static/chat/converse.min.js" \
    curl -skf -o /dev/null https://127.0.0.1:5443/static/chat/converse.min.js

step "stop (SIGTERM)"
kill "$SERVER"; wait "$SERVER" && rc=0 || rc=$?
SERVER=
check "exit status 0 on SIGTERM (was $rc)" test "$rc" = 0
check "the unpacked copy is removed at exit" test -z "$(ls -d "$XDG_CACHE_HOME"/parlour/_MEI* 2>/dev/null)"
check "the emptied folder in /tmp is gone too" test -z "$(new_in_tmp -maxdepth 0)"
if [ "$FAILURES" != 0 ]; then sed 's/^/        log: /' "$W/run.log"; fi

total
[ "$FAILURES" = 0 ]
