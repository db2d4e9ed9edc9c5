#!/bin/sh
# Smoke test of the frozen executable on the build host: version, check config, `run --dev` in a
# temporary folder, `user add`, and a client login (STARTTLS + SASL PLAIN + bind). Called by
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

echo "== $BIN ($(stat -c %s "$BIN") bytes)"
step "version, check config"
check "version says $APP_VERSION" test "$("$BIN" version)" = "parlour $APP_VERSION"
check "check config (packaging/parlour.toml)" "$BIN" check config --config "$ROOT/packaging/parlour.toml"

step "run --dev until port 5222 answers"
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

step "user add, client login"
check "user add alice@localhost" sh -c "echo frozen-test-password | '$BIN' user add alice@localhost --dev"
check "alice logs in" "$PY" "$LOGIN" 127.0.0.1 5222 localhost alice frozen-test-password

step "stop (SIGTERM)"
kill "$SERVER"; wait "$SERVER" && rc=0 || rc=$?
SERVER=
check "exit status 0 on SIGTERM (was $rc)" test "$rc" = 0
if [ "$FAILURES" != 0 ]; then sed 's/^/        log: /' "$W/run.log"; fi

total
[ "$FAILURES" = 0 ]
