#!/bin/sh
# Install, remove, reinstall, upgrade and purge the Debian package in a clean bookworm chroot
# (RECIPES.md §3). No systemd runs here: the maintainer scripts' systemd parts are skipped, the unit is
# only enabled; `make deb-systemd-test` covers a booted systemd. Called by `make deb-test`.
#
#   tests/packaging/chroot_test.sh [dist/parlour_<version>_amd64.deb]
#
# Needs root, mmdebstrap and a Debian mirror (MIRROR=...). The minimal bookworm tarball is cached in
# build/chroot/; each run unpacks a throwaway chroot under $TMPDIR and deletes it. Prints a timing
# after each step; exits 1 if any check failed.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/packaging/lib.sh"
DEB=${1:-$ROOT/dist/parlour_${APP_VERSION}_amd64.deb}
DEB=$(cd "$(dirname "$DEB")" && pwd)/$(basename "$DEB")
test -s "$DEB" || { echo "no $DEB; run make deb" >&2; exit 1; }
need_root_tools

C=$(mktemp -d "${TMPDIR:-/tmp}/parlour-chroot.XXXXXX")
cleanup() {
    umount -l "$C/tmp" 2>/dev/null || true
    umount -l "$C/proc" 2>/dev/null || true
    # Only delete the chroot once nothing is mounted inside it.
    rm -f "$C.apt.log"
    if ! grep -q " $C/" /proc/mounts; then rm -rf "$C"; else echo "left $C (still mounted)" >&2; fi
}
trap cleanup EXIT INT TERM

# in_c COMMAND: a shell command inside the chroot.
in_c() { chroot "$C" sh -c "$1"; }
# as_parlour ARGS...: /usr/bin/parlour inside the chroot as the service user.
as_parlour() { chroot "$C" setpriv --reuid=_parlour --regid=_parlour --init-groups /usr/bin/parlour "$@"; }
# apt_c ARGS...: apt-get inside the chroot; its output is shown only when it fails.
# stdin is /dev/null: a dpkg conffile prompt fails the step instead of waiting.
apt_c() {
    if ! chroot "$C" apt-get -y -qq -o Dpkg::Use-Pty=0 "$@" </dev/null >"$C.apt.log" 2>&1; then
        sed 's/^/   | /' "$C.apt.log"; fail "apt-get $*"
    fi
}
installed_version() { in_c "dpkg-query -W -f='\${Status} \${Version}' parlour 2>/dev/null" || true; }
owner_mode() { chroot "$C" stat -c '%U:%G %a' "$1"; }
# setup_as_parlour: `parlour setup` as the service user fills in /etc/parlour/parlour.toml (example.test).
setup_as_parlour() {
    echo 'chroot-setup-password' > "$C/tmp/setup-pw"; chmod 644 "$C/tmp/setup-pw"
    as_parlour setup --domain example.test --admin admin@example.test --password-file /tmp/setup-pw
}

echo "== package $DEB ($(stat -c %s "$DEB") bytes)"
step "base bookworm chroot"
base_tar
unpack_base "$C"
mount -t proc proc "$C/proc"
cp "$DEB" "$C/root/"
NAME=$(basename "$DEB")

step "apt-get update"
apt_c update

step "install $NAME"
apt_c install "/root/$NAME"
check "installed $APP_VERSION" test "$(installed_version)" = "install ok installed $APP_VERSION"
check "/usr/bin/parlour executable" test -x "$C/usr/bin/parlour"
# The one-folder build under /usr/lib/parlour: nothing unpacked at start (no temp cleaner can delete a
# running server's files, a noexec /tmp does not matter).
check "/usr/bin/parlour is a link to /usr/lib/parlour/parlour" test "$(chroot "$C" readlink -f /usr/bin/parlour)" = /usr/lib/parlour/parlour
check "/usr/lib/parlour/parlour executable" test -x "$C/usr/lib/parlour/parlour"
check "bundled interpreter in /usr/lib/parlour/_internal" test -f "$C/usr/lib/parlour/_internal/libpython3.11.so.1.0"
check "the wizard's files are plain files there" test -d "$C/usr/lib/parlour/_internal/appliance/storage/migrations"
check "packaged default in /usr/share/parlour" test -f "$C/usr/share/parlour/parlour.toml"
check "unit in /lib/systemd/system" test -f "$C/lib/systemd/system/parlour.service"
check "unit enabled" test -L "$C/etc/systemd/system/multi-user.target.wants/parlour.service"
check "man page" test -f "$C/usr/share/man/man1/parlour.1.gz"
# Not a conffile (the wizard rewrites it: a changed default would make every upgrade ask); postinst
# creates it from the packaged default.
check "parlour.toml is not a conffile" sh -c "! chroot '$C' dpkg-query -W -f='\${Conffiles}' parlour | grep -q parlour.toml"
check "parlour.toml created from /usr/share/parlour/parlour.toml" cmp "$C/usr/share/parlour/parlour.toml" "$C/etc/parlour/parlour.toml"
check "system user _parlour (home /var/lib/parlour, nologin)" sh -c \
    "chroot '$C' getent passwd _parlour | grep -Eq '^_parlour:x:[0-9]+:[0-9]+:Parlour XMPP server:/var/lib/parlour:/usr/sbin/nologin$'"
check "system group _parlour" sh -c "chroot '$C' getent group _parlour"
check "/var/lib/parlour _parlour:_parlour 700" test "$(owner_mode /var/lib/parlour)" = "_parlour:_parlour 700"
check "/etc/parlour _parlour:_parlour 750 (setup writes there)" test "$(owner_mode /etc/parlour)" = "_parlour:_parlour 750"
check "parlour.toml _parlour:_parlour 640" test "$(owner_mode /etc/parlour/parlour.toml)" = "_parlour:_parlour 640"
check "systemd-analyze verify --root (unit, ExecStart, user)" systemd-analyze verify --man=no --root="$C" parlour.service
uid=$(chroot "$C" id -u _parlour)
check "_parlour is a system uid ($uid < 1000)" test "$uid" -lt 1000

step "parlour version (with /tmp noexec); not set up yet; parlour setup (as _parlour); user add"
mount -t tmpfs -o noexec,nosuid,nodev tmpfs "$C/tmp"
out=$(in_c "/usr/bin/parlour version" 2>&1 || true)
check "parlour version says $APP_VERSION with a noexec /tmp ($out)" test "$out" = "parlour $APP_VERSION"
check "nothing unpacked into /tmp" test -z "$(ls -A "$C/tmp")"
umount "$C/tmp"
out=$(as_parlour check config 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out" | sed 's/^/        /'
check "check config exits 1 on the packaged file" test "$rc" = 1
contains "check config: not set up yet" "$out" '^FAIL config /etc/parlour/parlour.toml: not set up yet: open the wizard'
check "parlour setup --domain example.test (as _parlour)" setup_as_parlour
check "parlour.toml still _parlour:_parlour 640" test "$(owner_mode /etc/parlour/parlour.toml)" = "_parlour:_parlour 640"
out=$(as_parlour check config 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out" | sed 's/^/        /'
check "check config exits 0 after setup" test "$rc" = 0
contains "check config: host example.test" "$out" '^ok   config /etc/parlour/parlour.toml: 1 host (example.test)$'
contains "state dir writable by _parlour" "$out" '^ok   state /var/lib/parlour: writable$'
check "user add alice@example.test" sh -c "echo 'chroot-test-password' | chroot '$C' setpriv --reuid=_parlour --regid=_parlour --init-groups /usr/bin/parlour user add alice@example.test"
check "database owned by _parlour" test "$(chroot "$C" stat -c %U /var/lib/parlour/parlour.db)" = _parlour
echo "# local edit" >> "$C/etc/parlour/parlour.toml"

step "remove (data and configuration kept)"
apt_c remove parlour
check "status config-files" test "$(installed_version)" = "deinstall ok config-files $APP_VERSION"
check "/usr/bin/parlour gone" test ! -e "$C/usr/bin/parlour"
check "unit gone" test ! -e "$C/lib/systemd/system/parlour.service"
check "edited parlour.toml kept" grep -q '^# local edit' "$C/etc/parlour/parlour.toml"
check "database kept" test -s "$C/var/lib/parlour/parlour.db"
check "user _parlour kept" chroot "$C" getent passwd _parlour

step "reinstall"
apt_c install "/root/$NAME"
check "installed $APP_VERSION" test "$(installed_version)" = "install ok installed $APP_VERSION"
check "edited parlour.toml kept" grep -q '^# local edit' "$C/etc/parlour/parlour.toml"
check "account alice survived" sh -c "chroot '$C' setpriv --reuid=_parlour --regid=_parlour --init-groups /usr/bin/parlour user list example.test | grep -qx alice@example.test"

step "purge (everything gone)"
apt_c purge parlour
check "not installed" test -z "$(installed_version)"
check "/etc/parlour gone" test ! -e "$C/etc/parlour"
check "/var/lib/parlour gone" test ! -e "$C/var/lib/parlour"
check "enable link gone" test ! -e "$C/etc/systemd/system/multi-user.target.wants/parlour.service"

step "upgrade 0.0.9 -> $APP_VERSION (build the 0.0.9 variant)"
old_deb
cp "$OLD_DEB" "$C/root/"
apt_c install /root/parlour_0.0.9_amd64.deb
check "installed 0.0.9" test "$(installed_version)" = "install ok installed 0.0.9"
check "0.0.9: parlour setup rewrites parlour.toml (as the wizard does)" setup_as_parlour
check "user add bob@example.test on 0.0.9" sh -c "echo 'chroot-test-password' | chroot '$C' setpriv --reuid=_parlour --regid=_parlour --init-groups /usr/bin/parlour user add bob@example.test"
written=$(md5sum < "$C/etc/parlour/parlour.toml")
apt_c install "/root/$NAME"   # conffile changed locally, not in the package: no prompt (stdin is /dev/null)
check "upgraded to $APP_VERSION" test "$(installed_version)" = "install ok installed $APP_VERSION"
check "setup's parlour.toml kept as written" test "$(md5sum < "$C/etc/parlour/parlour.toml")" = "$written"
check "no parlour.toml.dpkg-* beside it" sh -c "! ls '$C'/etc/parlour/ | grep -q dpkg"
check "parlour.toml still _parlour:_parlour 640" test "$(owner_mode /etc/parlour/parlour.toml)" = "_parlour:_parlour 640"
check "account bob survived the upgrade" sh -c "chroot '$C' setpriv --reuid=_parlour --regid=_parlour --init-groups /usr/bin/parlour user list example.test | grep -qx bob@example.test"
check "/var/lib/parlour still _parlour:_parlour 700" test "$(owner_mode /var/lib/parlour)" = "_parlour:_parlour 700"

step "upgrade to a release whose packaged default parlour.toml changed (non-interactive)"
newdefault_deb
cp "$NEW_DEB" "$C/root/"
apt_c install "/root/$(basename "$NEW_DEB")"   # stdin /dev/null: a conffile prompt would fail this step
check "upgraded to $NEW_VERSION" test "$(installed_version)" = "install ok installed $NEW_VERSION"
check "the new default is in /usr/share/parlour" grep -q '^# A later release changed this default' "$C/usr/share/parlour/parlour.toml"
check "setup's parlour.toml kept as written" test "$(md5sum < "$C/etc/parlour/parlour.toml")" = "$written"
check "no parlour.toml.dpkg-* beside it" sh -c "! ls '$C'/etc/parlour/ | grep -q dpkg"
check "dpkg audit: nothing half-installed" sh -c "test -z \"\$(chroot '$C' dpkg --audit)\""
check "account bob survived" sh -c "chroot '$C' setpriv --reuid=_parlour --regid=_parlour --init-groups /usr/bin/parlour user list example.test | grep -qx bob@example.test"

step "purge after upgrade"
apt_c purge parlour
check "/etc/parlour and /var/lib/parlour gone" sh -c "test ! -e '$C/etc/parlour' && test ! -e '$C/var/lib/parlour'"

total
[ "$FAILURES" = 0 ]
