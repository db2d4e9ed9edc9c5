#!/bin/sh
# Boot the VM image under QEMU (TCG software emulation; RECIPES.md §6) and reach the setup wizard from
# the host. Called by `make vm-test` (long: about a minute of boot; documented, not in CI).
#
#   tests/packaging/vm_test.sh [build/vm/parlour.raw]
#
# The guest has no network beyond QEMU's user-mode NAT with restrict=on (it cannot reach anything); the
# wizard's port 5280 and the XMPP port 5222 are forwarded to free ports on 127.0.0.1 only. The test reads
# the wizard URL with its one-time token from the console banner (serial console), then:
#   - the wizard answers /setup?token=… from the host (prints the time from QEMU start until it did);
#   - the banner shows the URL (/etc/issue.d/parlour.issue, with the guest's DHCP address);
#   - nothing listens on the SSH port.
#   - the root partition grew to the (1 GiB larger) disk, and the service itself printed the wizard URL
#     with the LAN address (both on the console).
# The disk is a temporary qcow2 overlay: the image is never modified.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/packaging/lib.sh"
IMG=${1:-$ROOT/build/vm/parlour.raw}
test -s "$IMG" || { echo "no $IMG; run make vm-image" >&2; exit 1; }
IMG=$(cd "$(dirname "$IMG")" && pwd)/$(basename "$IMG")   # the overlay names it as its backing file
command -v qemu-system-x86_64 >/dev/null || {
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends qemu-system-x86 >/dev/null; }
T=$(mktemp -d "${TMPDIR:-/tmp}/parlour-vm.XXXXXX")
QEMU=
# The console output stays for reading after the run: build/vm/serial.log.
SERIAL_KEEP=$ROOT/build/vm/serial.log
trap 'stop_bg "$QEMU"; cp "$T/serial.log" "$SERIAL_KEEP" 2>/dev/null || true; rm -rf "$T"' EXIT INT TERM
# Seconds from QEMU's start to the wizard's URL on the console: about 60 under TCG on an idle 2-core
# machine, many minutes when other jobs share it.
BOOT_LIMIT=${BOOT_LIMIT:-1200}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTP=$(free_port); XMPP=$(free_port); SSH=$(free_port)

echo "== $IMG ($(du -m "$IMG" | cut -f1) MB allocated)"
step "boot under QEMU (TCG), ports 127.0.0.1:$HTTP -> 5280, :$XMPP -> 5222, :$SSH -> 22"
t0=$(date +%s.%N)
# The image behind a temporary overlay whose disk is 1 GiB larger: the root partition must grow to it.
DISK_MB=$(( $(stat -c %s "$IMG") / 1048576 + 1024 ))
qemu-img create -q -f qcow2 -F raw -b "$IMG" "$T/disk.qcow2" "${DISK_MB}M"
qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp 2 -m 1024 \
    -drive "file=$T/disk.qcow2,format=qcow2,if=virtio" \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$HTTP-:5280,hostfwd=tcp:127.0.0.1:$XMPP-:5222,hostfwd=tcp:127.0.0.1:$SSH-:22" \
    -device virtio-net-pci,netdev=n0 \
    -display none -serial "file:$T/serial.log" -monitor none -no-reboot &
QEMU=$!
elapsed() { echo "$(date +%s.%N) - $t0" | bc; }

# The banner (agetty on the serial console) carries the URL once the service has made its token and
# DHCP has given the guest an address.
url=
while [ -z "$url" ]; do
    # The banner's link (the service's own lines say "Open http://..."; they are checked below).
    [ -f "$T/serial.log" ] && url=$(tr -d '\r' < "$T/serial.log" | grep -v 'Open http' |
        grep -o 'http://[0-9][^ ]*/setup?token=[A-Za-z0-9_-]*' | tail -1 || true)
    [ -n "$url" ] && break
    if [ "$(echo "$(elapsed) > $BOOT_LIMIT" | bc)" = 1 ] || ! kill -0 "$QEMU" 2>/dev/null; then
        fail "no wizard URL with an address on the console within $BOOT_LIMIT s"; tail -40 "$T/serial.log" | sed 's/^/        /'
        total; exit 1
    fi
    sleep 1
done
printf '   banner after %.0f s: %s\n' "$(elapsed)" "$url"
ok "console banner shows the wizard URL with the token"
contains "banner names the guest's DHCP address" "$url" '^http://10\.0\.2\.15:5280/setup'
token=${url##*token=}
serial=$(tr -d '\r' < "$T/serial.log")
contains "root partition grown to the larger disk (console)" "$serial" 'parlour-grow-root: grew /dev/vda1 (/) from'
contains "the service printed the LAN address, not 127.0.0.1 (console)" "$serial" 'Open http://10\.0\.2\.15:5280/setup?token='
check "the service printed no 127.0.0.1 wizard URL" sh -c "! printf '%s' \"\$1\" | grep -q 'Open http://127\.0\.0\.1:'" _ "$serial"

step "the wizard from the host"
code=
while [ "$code" != 200 ]; do
    # The token buys a session cookie and a redirect to the first step (the token leaves the address bar).
    code=$(curl -s -m 10 -L -c "$T/cookies" -b "$T/cookies" -o "$T/setup.html" -w '%{http_code}' \
        "http://127.0.0.1:$HTTP/setup?token=$token" || true)
    [ "$code" = 200 ] && break
    [ "$(echo "$(elapsed) > $BOOT_LIMIT + 120" | bc)" = 1 ] && break
    sleep 1
done
if [ "$code" = 200 ]; then
    printf '   QEMU start -> wizard answered from the host: %.0f s\n' "$(elapsed)"
    ok "GET /setup?token=… via 127.0.0.1:$HTTP leads to the wizard's first step (200)"
else
    fail "GET /setup?token=… answered ${code:-nothing}"
fi
contains "the page is a wizard step with a form" "$(cat "$T/setup.html")" '<form'
bad=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP/setup?token=wrong-token" || true)
contains "a wrong token is refused (HTTP $bad)" "$bad" '^4'
# With hostfwd the host side accepts and QEMU closes at once when nothing listens in the guest.
ssh_banner=$(python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', $SSH), timeout=5)
s.settimeout(5)
try:
    print(s.recv(64).decode(errors='replace'))
except OSError:
    pass
" 2>/dev/null || true)
check "no SSH server (port 22 gives no banner)" test -z "$ssh_banner"
total
[ "$FAILURES" = 0 ]
