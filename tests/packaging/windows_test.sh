#!/bin/sh
# The Windows installer for real, under Wine (RECIPES.md §5). Called by `make windows-test` (long-ish,
# about 1-2 minutes; documented, not in CI). Runs in a private network namespace (unshare -n, root) so
# the installed service can use its real ports (5222, 5280) without clashing with the host.
#
#   tests/packaging/windows_test.sh [dist/windows/parlour-setup-<version>.exe]
#
# In a fresh Wine prefix (build/windows/test-prefix):
# 1. silent install: files, registry, service (auto start, `parlour.exe service run`), Start-menu entry;
#    no config yet, so the service runs setup mode: the wizard answers on 5280 with the one-time token
#    from C:\ProgramData\Parlour\setup-token (the URL the Start-menu entry opens);
# 2. `net stop` closes the port; a config is written (as the wizard would); `net start`: the server
#    answers XMPP on 5222 and HTTP on 5280, its database and log in C:\ProgramData\Parlour, and
#    `parlour federation status` through the control port (control-port.json there);
# 3. an upgrade (the same installer again) keeps an edited config and the database;
# 4. silent uninstall: service, program files, shortcut and uninstall key gone, data kept;
# 5. install again, then `uninstall.exe /S /PURGE`: the data is gone too.
# Not verifiable under Wine (docs/packaging.md, "Windows"): that the service runs as NT SERVICE\Parlour
# (the service manager's record says so, but Wine starts every service as the prefix's user), the
# firewall rule and its profiles (netsh is a stub), the folder ACL (icacls), the service SID type and the
# upgrade's `sc config` (Wine's sc.exe has neither `config` nor `sidtype`), the restart on failure (Wine's
# sc.exe does not store failure actions), what the elevated Start-menu shortcut does on a desktop (only
# its .lnk flag is checked).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${PARLOUR_IN_NETNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "windows-test: needs root (unshare -n)" >&2; exit 1; }
    exec env PARLOUR_IN_NETNS=1 unshare -n sh -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
. "$ROOT/tests/packaging/lib.sh"
SETUP=${1:-$ROOT/dist/windows/parlour-setup-$APP_VERSION.exe}
test -s "$SETUP" || { echo "no $SETUP; run make windows" >&2; exit 1; }
PY=$(command -v python3)
LOGIN="$ROOT/tests/packaging/xmpp_login.py"
export WINEPREFIX=$ROOT/build/windows/test-prefix WINEDLLOVERRIDES="mscoree,mshtml=" WINEDEBUG=-all DISPLAY=
C=$WINEPREFIX/drive_c
PF="$C/Program Files/Parlour"
DATA=$C/ProgramData/Parlour
LNK="$C/ProgramData/Microsoft/Windows/Start Menu/Programs/Parlour/Parlour setup.lnk"
SVC_KEY='HKLM\System\CurrentControlSet\Services\Parlour'
UNINST_KEY='HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\Parlour'
# Seconds a (re)started service may take to answer: the one-file exe unpacks and starts under Wine, on a
# build machine shared with other jobs (minutes at worst; seconds on an idle one).
START_LIMIT=${START_LIMIT:-300}
cleanup() { wineserver -k 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# Wine quietly: pitfall 4/5 (stdin /dev/null, output through a pipe; services inherit the caller's pipes).
wq() { wine "$@" </dev/null 2>&1 | cat | tr -d '\r'; }
reg_query() { wq reg query "$@"; }
answers_xmpp() { "$PY" "$LOGIN" 127.0.0.1 5222 localhost >/dev/null 2>&1; }
answers_http() { curl -sf -m 3 -o /dev/null http://127.0.0.1:5280/.well-known/host-meta; }
# wait_for SECONDS COMMAND...: until the command succeeds; prints how long it took.
wait_for() {
    limit=$1; shift; t0=$(date +%s.%N)
    while ! "$@"; do
        [ "$(echo "$(date +%s.%N) - $t0 < $limit" | bc)" = 1 ] || return 1
        sleep 0.5
    done
    printf '   (%.1f s)\n' "$(echo "$(date +%s.%N) - $t0" | bc)"
}
not() { ! "$@"; }
# install: the installer, silently; its own output goes nowhere (pitfall 5).
install() {
    t0=$(date +%s.%N)
    wine "$SETUP" /S </dev/null >/dev/null 2>&1
    printf '   silent install %.1f s\n' "$(echo "$(date +%s.%N) - $t0" | bc)"
}
# uninstall [ARGS]: the NSIS uninstaller re-runs itself from %TEMP% and returns at once: wait for it.
uninstall() {
    t0=$(date +%s.%N)
    wine "$PF/uninstall.exe" /S "$@" </dev/null >/dev/null 2>&1
    wait_for 180 not test -e "$PF/uninstall.exe" >/dev/null || true
    wait_for 60 not reg_query_ok "$UNINST_KEY" >/dev/null || true
    sleep 1
    printf '   silent uninstall %s %.1f s\n' "$*" "$(echo "$(date +%s.%N) - $t0" | bc)"
}
reg_query_ok() { wine reg query "$1" </dev/null >/dev/null 2>&1; }
wizard_answers() {
    [ -r "$DATA/setup-token" ] || return 1
    token=$(tr -cd 'A-Za-z0-9_-' < "$DATA/setup-token")
    # The token buys a session cookie and a redirect to the wizard's first step.
    [ "$(curl -s -m 10 -L -b '' -o /dev/null -w '%{http_code}' "http://127.0.0.1:5280/setup?token=$token")" = 200 ]
}

echo "== $SETUP ($(stat -c %s "$SETUP") bytes)"
step "fresh Wine prefix"
rm -rf "$WINEPREFIX"
wineboot -i </dev/null >/dev/null 2>&1
# The test-only stand-in for the DLL Wine 8.0 lacks (pitfall 3); windows/build.sh made it.
cp "$ROOT/build/windows/prefix/drive_c/windows/system32/bcryptprimitives.dll" "$C/windows/system32/"
# Wine's service manager gives a service 10 s to reach its dispatcher, Windows 30 s (ServicesPipeTimeout).
# The one-file exe unpacks ~100 MB at each start, which under Wine on a loaded machine takes longer than
# 10 s: StartService then fails (ERROR_SERVICE_REQUEST_TIMEOUT, and `net start` reports the service's
# initial exit code 1077, "never started"). Wine's services.exe reads ServicesPipeTimeout only as a string
# (REG_SZ; Windows reads a REG_DWORD), so a DWORD is silently ignored. Generous for a shared machine;
# the prefix restarts so services.exe reads it.
wq reg add 'HKLM\System\CurrentControlSet\Control' /v ServicesPipeTimeout /t REG_SZ /d 180000 /f >/dev/null
wineserver -w 2>/dev/null || true
wineboot </dev/null >/dev/null 2>&1

step "1. silent install"
install
check "parlour.exe in Program Files" test -s "$PF/parlour.exe"
check "uninstall.exe in Program Files" test -s "$PF/uninstall.exe"
check "no config shipped (setup mode)" not test -e "$DATA/parlour.toml"
check "Start-menu entry" test -s "$LNK"
# The entry reads the one-time token, so it asks for elevation: SLDF_RUNAS_USER in the .lnk header.
lnk_flags=$(od -An -tx1 -j21 -N1 "$LNK" 2>/dev/null | tr -d ' ')
check "Start-menu entry runs as administrator" test $(( 0x${lnk_flags:-0} & 0x20 )) = 32
svc=$(reg_query "$SVC_KEY")
contains "service ImagePath runs 'parlour.exe service run'" "$svc" 'ImagePath.*Program Files\\Parlour\\parlour.exe" service run'
contains "service starts automatically (Start 0x2)" "$svc" 'Start.*0x2'
# The account the service manager records (Wine runs every service as the prefix's user whatever it
# says, so only the record can be checked here).
contains "service account NT SERVICE\\Parlour, not LocalSystem" "$svc" 'ObjectName.*NT SERVICE\\Parlour'
contains "uninstall key DisplayVersion $APP_VERSION" "$(reg_query "$UNINST_KEY")" "DisplayVersion.*$APP_VERSION"
if wait_for "$START_LIMIT" wizard_answers; then ok "setup wizard answers /setup?token=… on 5280"; else fail "wizard on 5280"; fi
check "log in ProgramData says setup mode" grep -q "Setup mode: open http://" "$DATA/parlour.log"

step "2. net stop, a config (as the wizard writes it), net start"
wq net stop Parlour >/dev/null
if wait_for 120 not wizard_answers; then ok "port closed after net stop"; else fail "port closed after net stop"; fi
printf '[server]\nadmins = []\n\n[c2s]\ninterfaces = ["127.0.0.1"]\n\n[hosts."localhost"]\n' > "$DATA/parlour.toml"
wq net start Parlour >/dev/null
if wait_for "$START_LIMIT" answers_xmpp; then ok "service answers XMPP on 5222"; else fail "service answers XMPP on 5222"; fi
if wait_for 120 answers_http; then ok "service answers HTTP on 5280 (host-meta)"; else fail "HTTP on 5280"; fi
check "log in ProgramData" grep -q "Parlour $APP_VERSION starting" "$DATA/parlour.log"
check "database in ProgramData" test -s "$DATA/parlour.db"
# No Unix sockets on Windows: the service answers `parlour` commands on a loopback port, its port and
# token in a file it keeps to itself (a protected ACL; Wine stores it, but every process runs as the
# prefix's user, so only the answer can be checked here).
check "control-port.json in ProgramData" test -s "$DATA/control-port.json"
status=$(wq "$PF/parlour.exe" federation status)
contains "parlour federation status answers through the loopback port" "$status" '^federation: o[nf]*; 0 connection'

step "3. upgrade (same installer again) keeps an edited config"
echo "# edited by windows-test" >> "$DATA/parlour.toml"
install
check "edited config kept" grep -q "edited by windows-test" "$DATA/parlour.toml"
if wait_for "$START_LIMIT" answers_xmpp; then ok "answers after the upgrade"; else fail "answers after the upgrade"; fi

step "4. silent uninstall keeps the data"
uninstall
check "port closed" not answers_xmpp
check "service removed" not reg_query_ok "$SVC_KEY"
check "uninstall key removed" not reg_query_ok "$UNINST_KEY"
check "program files removed" not test -e "$PF/parlour.exe"
check "Start-menu entry removed" not test -e "$LNK"
check "config kept" grep -q "edited by windows-test" "$DATA/parlour.toml"
check "database kept" test -s "$DATA/parlour.db"

step "5. install again, uninstall /PURGE removes the data"
install
if wait_for "$START_LIMIT" answers_xmpp; then ok "answers after reinstall"; else fail "answers after reinstall"; fi
check "config from before kept" grep -q "edited by windows-test" "$DATA/parlour.toml"
uninstall /PURGE
check "data removed" not test -e "$DATA"
check "service removed" not reg_query_ok "$SVC_KEY"
total
[ "$FAILURES" = 0 ]
