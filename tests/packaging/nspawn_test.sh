#!/bin/sh
# The Debian package under a real, booted systemd (RECIPES.md §4): systemd-nspawn --boot of a clean
# bookworm with its own network namespace (no port clashes with the host). Called by
# `make deb-systemd-test` (long-ish: about a minute; not part of `make package-check`).
#
#   tests/packaging/nspawn_test.sh [dist/parlour_<version>_amd64.deb]
#
# 1. chroot: install the 0.0.9 variant (pulls in systemd), then boot the container;
# 2. fresh install: the service is active in setup mode, the journal shows the wizard URL with its token,
#    GET of that URL answers 200; the wizard is walked over HTTP (the service itself writes
#    /etc/parlour/parlour.toml) and switches to the server; after a restart the admin logs in on 5222;
# 3. upgrade to this version: the service is restarted (new main PID), setup's parlour.toml is kept
#    without a prompt, the accounts still log in;
# 4. reinstall: restarted, state kept; hardening checked on the running process;
# 5. purge: the service stops, its state is gone; 6. a fresh install under systemd starts setup mode.
# Needs root, mmdebstrap, systemd-container (systemd-nspawn), nsenter and a Debian mirror.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/packaging/lib.sh"
DEB=${1:-$ROOT/dist/parlour_${APP_VERSION}_amd64.deb}
DEB=$(cd "$(dirname "$DEB")" && pwd)/$(basename "$DEB")
test -s "$DEB" || { echo "no $DEB; run make deb" >&2; exit 1; }
need_root_tools
command -v systemd-nspawn >/dev/null || { echo "needs systemd-nspawn: apt-get install systemd-container" >&2; exit 1; }
PY=$(command -v python3)
LOGIN="$ROOT/tests/packaging/xmpp_login.py"
NAME=$(basename "$DEB")
PASSWORD=nspawn-test-password
DOMAIN=example.test
WALK="$ROOT/tests/packaging/wizard_walk.py"

C=$(mktemp -d "${TMPDIR:-/tmp}/parlour-nspawn.XXXXXX")
NSPAWN_PID=
cleanup() {
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        [ -n "${P:-}" ] && in_ct systemctl --no-block start poweroff.target 2>/dev/null || true
        sleep 3; kill "$NSPAWN_PID" 2>/dev/null || true; wait "$NSPAWN_PID" 2>/dev/null || true
    fi
    umount -l "$C/proc" 2>/dev/null || true
    rm -f "$C.apt.log" "$C.console.log.keep"
    if ! grep -q " $C/" /proc/mounts; then rm -rf "$C"; else echo "left $C (still mounted)" >&2; fi
}
trap cleanup EXIT INT TERM

# in_ct COMMAND...: run inside the booted container (all its namespaces, a clean environment).
in_ct() { nsenter -t "$P" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
# net_ct COMMAND...: run a host program inside the container's network namespace only.
net_ct() { nsenter -t "$P" -n "$@"; }
# apt_ct ARGS...: apt-get in the container; stdin is /dev/null, so a conffile prompt fails the step.
apt_ct() {
    if ! in_ct apt-get -y -qq -o Dpkg::Use-Pty=0 "$@" </dev/null >"$C.apt.log" 2>&1; then
        sed 's/^/   | /' "$C.apt.log"; fail "apt-get $*"
    fi
}
main_pid() { in_ct systemctl show -P MainPID parlour; }
# wait_listening: until port 5222 answers inside the container (at most 20 s).
wait_listening() {
    i=0
    while ! net_ct "$PY" "$LOGIN" 127.0.0.1 5222 $DOMAIN >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || return 1; sleep 0.2
    done
}
login() { net_ct "$PY" "$LOGIN" 127.0.0.1 5222 $DOMAIN "$1" "$PASSWORD"; }
journal() { in_ct journalctl -u parlour --no-pager -q -o cat "$@"; }
OPEN='Open http://[^ ]*:5280/setup?token=[A-Za-z0-9_-]*'
SEEN=0   # how many wizard URLs the journal held before the current start
urls_seen() { journal | grep -c "$OPEN" || true; }
# wizard_url: the first "Open http://...:5280/setup?token=..." line after the SEEN ones (waits 20 s).
wizard_url() {
    i=0
    while ! url=$(journal | grep -o "$OPEN" | sed -n "$((SEEN + 1))p" | cut -c6-) || [ -z "$url" ]; do
        i=$((i + 1)); [ $i -lt 100 ] || return 1; sleep 0.2
    done
    echo "$url"
}
# setup_mode_up: active, the journal shows the wizard URL, and GET of it (in the container) answers 200.
setup_mode_up() {
    check "parlour active" in_ct systemctl is-active parlour
    if url=$(wizard_url); then ok "journal: Open $url"; else fail "no 'Open http://...:5280/setup?token=' in the journal"; fi
    check "GET $url -> 200 (the wizard's first step)" net_ct "$PY" "$WALK" "$url"
    if [ "$FAILURES" != 0 ]; then journal -n 30 | sed 's/^/        journal: /'; fi
}
# service_up: active, answering on 5222, never restarted; else show the journal.
service_up() {
    check "parlour active" in_ct systemctl is-active parlour
    check "port 5222 answers" wait_listening
    check "no crash restarts (NRestarts=$(in_ct systemctl show -P NRestarts parlour))" \
        test "$(in_ct systemctl show -P NRestarts parlour)" = 0
    if [ "$FAILURES" != 0 ]; then journal -n 30 | sed 's/^/        journal: /'; fi
}

echo "== package $DEB ($(stat -c %s "$DEB") bytes)"
step "base bookworm + parlour 0.0.9 installed in a chroot (pulls in systemd)"
base_tar
unpack_base "$C"
old_deb
cp "$DEB" "$OLD_DEB" "$C/root/"   # /root, not /tmp: the booted container mounts a tmpfs on /tmp
mount -t proc proc "$C/proc"
chroot "$C" apt-get -qq update >/dev/null
chroot "$C" apt-get -y -qq install /root/parlour_0.0.9_amd64.deb >"$C.apt.log" 2>&1 || { cat "$C.apt.log"; exit 1; }
umount "$C/proc"

step "boot (systemd-nspawn --boot --private-network)"
timeout -k 5 300 systemd-nspawn -q -D "$C" --register=no --keep-unit --private-network \
    --console=pipe --boot >"$C.console.log.keep" 2>&1 &
NSPAWN_PID=$!
P=
i=0
while [ -z "$P" ]; do
    # timeout -> systemd-nspawn -> the container's PID 1 (systemd)
    for ns in $(pgrep -P "$NSPAWN_PID" -x systemd-nspawn); do P=$(pgrep -P "$ns" -x systemd || true); done
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$C.console.log.keep"; echo "container did not start" >&2; exit 1; }
    sleep 0.1
done
# PID 1 exists before its bus does: systemctl asked too early fails at once ("Failed to connect to
# bus"), which made this test flaky. Wait for systemd's private socket, then let systemctl wait for the
# boot to finish (retrying while the socket is not accepting yet).
i=0
until in_ct test -S /run/systemd/private 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 300 ] || { cat "$C.console.log.keep"; echo "no systemd bus after 30 s" >&2; exit 1; }
    sleep 0.1
done
i=0
while :; do
    state=$(in_ct timeout 90 systemctl is-system-running --wait 2>&1 || true)
    case $state in *bus*|*"connect"*) ;; *) break ;; esac
    i=$((i + 1)); [ $i -lt 50 ] || break
    sleep 0.2
done
check "system running ($state)" sh -c "test '$state' = running || test '$state' = degraded"
if [ "$state" = degraded ]; then in_ct systemctl --failed --no-legend --plain | sed 's/^/        failed: /'; fi
in_ct systemd-analyze 2>/dev/null | sed 's/^/        /' || true

step "fresh install: setup mode after boot (journal: wizard URL; GET 200)"
setup_mode_up

step "the wizard over HTTP: the service writes /etc/parlour/parlour.toml and switches to the server"
check "walk every step ($DOMAIN, admin, local CA) to the done page" net_ct "$PY" "$WALK" "$url" \
    --complete "$DOMAIN" admin "$PASSWORD"
check "parlour.toml written for $DOMAIN" grep -qx "\[hosts.\"$DOMAIN\"\]" "$C/etc/parlour/parlour.toml"
check "parlour.toml _parlour:_parlour 640" test "$(in_ct stat -c '%U:%G %a' /etc/parlour/parlour.toml)" = "_parlour:_parlour 640"
check "5222 answers (the same process switched over, no restart)" wait_listening
check "admin@$DOMAIN logs in on 5222" login admin

step "restart; add an account; clients log in"
in_ct systemctl restart parlour
service_up
check "admin logs in after the restart" login admin
check "user add alice@$DOMAIN (as _parlour)" sh -c "echo $PASSWORD | nsenter -t $P -a setpriv --reuid=_parlour --regid=_parlour --init-groups /usr/bin/parlour user add alice@$DOMAIN"
check "alice logs in" login alice
login alice 2>&1 | sed 's/^/        /'
written=$(md5sum < "$C/etc/parlour/parlour.toml")

step "upgrade 0.0.9 -> $APP_VERSION under systemd (restart, state kept)"
before=$(main_pid)
apt_ct install "/root/$NAME"
check "installed $APP_VERSION" test "$(in_ct dpkg-query -W -f='${Version}' parlour)" = "$APP_VERSION"
after=$(main_pid)
check "restarted (main PID $before -> $after)" test "$before" != "$after"
service_up
check "setup's parlour.toml kept without a prompt" test "$(md5sum < "$C/etc/parlour/parlour.toml")" = "$written"
check "no parlour.toml.dpkg-* beside it" sh -c "! ls '$C'/etc/parlour/ | grep -q dpkg"
check "alice still logs in" login alice
check "admin still logs in" login admin

step "reinstall (restart, state kept)"
before=$(main_pid)
apt_ct install --reinstall "/root/$NAME"
after=$(main_pid)
check "restarted (main PID $before -> $after)" test "$before" != "$after"
service_up
check "alice still logs in" login alice

step "hardening of the running service"
status=$(in_ct cat "/proc/$(main_pid)/status" || true)
contains "runs as _parlour" "$status" "^Uid:[[:space:]]*$(in_ct id -u _parlour)[[:space:]]"
contains "CapEff only CAP_NET_BIND_SERVICE" "$status" '^CapEff:[[:space:]]*0000000000000400$'
contains "CapAmb only CAP_NET_BIND_SERVICE" "$status" '^CapAmb:[[:space:]]*0000000000000400$'
contains "NoNewPrivs" "$status" '^NoNewPrivs:[[:space:]]*1$'
contains "seccomp filter" "$status" '^Seccomp:[[:space:]]*2$'
# LimitNOFILE=65536, capped by what the container's systemd may give (its own hard limit, inherited
# from whoever started systemd-nspawn), but never systemd's default soft limit of 1,024.
nofile() { in_ct cat "/proc/$1/limits" | awk '/^Max open files/ { print $4, $5 }'; }
ceiling=$(nofile 1 | cut -d' ' -f2)
want=$(( ceiling < 65536 ? ceiling : 65536 ))
got=$(nofile "$(main_pid)")
check "open-file limit $got (soft hard): LimitNOFILE=65536 within the ceiling $ceiling, not 1024" test "$got" = "$want $want"
exposure=$(in_ct systemd-analyze security parlour.service 2>/dev/null | sed -n 's/.*Overall exposure level for parlour.service: \([0-9.]*\).*/\1/p')
check "systemd-analyze security (running): exposure $exposure <= 2.0" sh -c "echo '$exposure <= 2.0' | bc | grep -qx 1"
journal -n 4 | sed 's/^/        journal: /'

step "purge under systemd (stopped, everything gone)"
apt_ct purge parlour
check "parlour no longer active" sh -c "! nsenter -t $P -a systemctl is-active -q parlour"
check "/var/lib/parlour and /etc/parlour gone" sh -c "test ! -e '$C/var/lib/parlour' && test ! -e '$C/etc/parlour'"

step "fresh install under systemd (setup mode at once)"
SEEN=$(urls_seen)
apt_ct install "/root/$NAME"
setup_mode_up

step "poweroff"
in_ct systemctl --no-block start poweroff.target || true   # "systemctl poweroff" wants D-Bus (not installed)
wait "$NSPAWN_PID" 2>/dev/null || true
NSPAWN_PID=

total
[ "$FAILURES" = 0 ]
