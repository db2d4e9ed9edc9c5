#!/bin/sh
# slixmpp's own integration tests (itests/ of its source release) against Parlour, the way slixmpp's CI
# runs them against Prosody: two accounts, a MUC service, HTTP upload and an outage-status document, a
# server on the standard ports (5222, 5223, 5280, 5443). Everything runs in a private network namespace
# (`unshare --net`, so root), where those ports are free and nothing else on the machine is disturbed.
# Prints unittest's report and a last line "slixmpp itests: P of N passed". `make interop-slixmpp`; not
# part of `make test`. The slixmpp release is the one installed in the venv (its sdist, from PyPI).
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
PARLOUR=$(dirname "$PY")/parlour
WORK=${WORK:-$ROOT/build/slixmpp-itests}

if [ "${PARLOUR_IN_NETNS:-}" != 1 ]; then
    VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("slixmpp"))')
    SRC=$WORK/slixmpp-$VERSION
    if [ ! -d "$SRC/itests" ]; then
        mkdir -p "$WORK"
        "$PY" -m pip download --quiet --no-deps --no-binary :all: "slixmpp==$VERSION" -d "$WORK"
        tar -xzf "$WORK/slixmpp-$VERSION.tar.gz" -C "$WORK"
    fi
    [ "$(id -u)" = 0 ] || { echo "needs root for a private network namespace (unshare --net)" >&2; exit 2; }
    exec unshare --net env PARLOUR_IN_NETNS=1 SLIXMPP_SRC="$SRC" "$0" "$@"
fi

ip link set lo up
RUN=$(mktemp -d /tmp/parlour-slixmpp.XXXXXX)
SERVER=""
STATUS_HTTP=""
cleanup() {
    [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true
    [ -z "$STATUS_HTTP" ] || kill "$STATUS_HTTP" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

# The tests, without the source tree's slixmpp package (it needs a Rust build): the venv's slixmpp runs them.
cp -r "$SLIXMPP_SRC/itests" "$SLIXMPP_SRC/run_integration_tests.py" "$RUN/"

cat > "$RUN/parlour.toml" <<TOML
[server]
state_dir = "state"

[c2s]
interfaces = ["127.0.0.1", "::1"]

[logging]
level = "warning"

[modules.upload]
url_base = "https://localhost:5443"

[modules.outage_status]
addresses = ["http://localhost:8000/status.json"]

[hosts.localhost]
TOML

# XEP-0455's status document lives outside the XMPP server; "{}" means "no outage" (what the test expects).
mkdir -p "$RUN/www" && echo '{}' > "$RUN/www/status.json"
"$PY" -m http.server 8000 --bind 127.0.0.1 --directory "$RUN/www" >/dev/null 2>&1 &
STATUS_HTTP=$!

"$PARLOUR" run --config "$RUN/parlour.toml" >"$RUN/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
    if "$PY" -c 'import socket; socket.create_connection(("127.0.0.1", 5222), 1).close()' 2>/dev/null; then break; fi
    sleep 0.2
done
for n in 1 2; do
    echo "slix-ci-$n-pass" | "$PARLOUR" user add "slix-ci-$n@localhost" --config "$RUN/parlour.toml" >/dev/null
done

cd "$RUN"
set +e
SSL_CERT_FILE="$RUN/state/certs/ca.pem" \
CI_ACCOUNT1=slix-ci-1@localhost CI_ACCOUNT1_PASSWORD=slix-ci-1-pass \
CI_ACCOUNT2=slix-ci-2@localhost CI_ACCOUNT2_PASSWORD=slix-ci-2-pass \
CI_MUC_SERVER=conference.localhost \
    "$PY" run_integration_tests.py "$@" 2>&1 | tee "$RUN/report.txt"
set -e
"$PY" - "$RUN/report.txt" <<'PYTHON'
import re, sys
text = open(sys.argv[1]).read()
ran = int(re.search(r"^Ran (\d+) tests?", text, re.M).group(1))
bad = sum(int(n) for n in re.findall(r"(?:failures|errors)=(\d+)", text.split("\nRan ")[-1]))
skipped = sum(int(n) for n in re.findall(r"skipped=(\d+)", text.split("\nRan ")[-1]))
print(f"slixmpp itests: {ran - bad - skipped} of {ran} passed ({skipped} skipped, {bad} failed or errors)")
PYTHON
