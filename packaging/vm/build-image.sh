#!/bin/sh
# Build the turnkey Parlour VM image (RECIPES.md §6). Called by `make vm-image` (long: about 3-4 minutes).
#
#   packaging/vm/build-image.sh [dist/parlour_<version>_amd64.deb]
#   -> dist/vm/parlour-<version>.qcow2   (QEMU/KVM, Proxmox, libvirt)
#      dist/vm/parlour-<version>.vmdk    (VMware, VirtualBox; streamOptimized)
#
# Debian stable (SUITE) from mmdebstrap, minimal, with Parlour's .deb preinstalled (its service enabled;
# the package's placeholder parlour.toml removed and /etc/parlour owned by _parlour, so the first boot
# runs setup mode and the wizard can write the configuration),
# DHCP on every wired interface (systemd-networkd + resolved; boot waits for an IPv4 address, so the
# service's journal names the LAN address rather than 127.0.0.1), time sync, unattended security
# upgrades, Parlour's own apt repository defined but off until it is published (parlour.sources,
# docs/packages.md), the root partition grown to the disk at every boot (parlour-grow-root*), and a
# console banner with the setup wizard's URL and one-time token (parlour-banner*). SSH is not
# installed. Console login: root / parlour, expired, so the first login sets a new password.
# BIOS/MBR boot (GRUB core.img written after the MBR: no loop devices, mounts or udev needed).
#
# Needs root, mmdebstrap, qemu-utils, fdisk, e2fsprogs, grub-pc-bin and a Debian mirror (MIRROR).
# Scratch files go to build/vm (WORK); the raw disk stays there for `make vm-test`.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/appliance/__init__.py")
DEB=${1:-$ROOT/dist/parlour_${VERSION}_amd64.deb}
DEB=$(cd "$(dirname "$DEB")" && pwd)/$(basename "$DEB")
SUITE=${SUITE:-trixie}                 # Debian stable
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=${WORK:-$ROOT/build/vm}
OUT=${OUT:-$ROOT/dist/vm}
SIZE_MB=${SIZE_MB:-2048}
# The one place that names the wizard's token file (appliance/services/setup_token.py: state folder/setup-token).
SETUP_TOKEN_FILE=${SETUP_TOKEN_FILE:-/var/lib/parlour/setup-token}
HERE=$ROOT/packaging/vm
export LC_ALL=C.UTF-8

[ "$(id -u)" = 0 ] || { echo "build-image: needs root (mmdebstrap)" >&2; exit 1; }
test -s "$DEB" || { echo "build-image: no $DEB; run make deb" >&2; exit 1; }
missing=
for pair in mmdebstrap:mmdebstrap qemu-img:qemu-utils sfdisk:fdisk mke2fs:e2fsprogs \
            grub-mkimage:grub-pc-bin bc:bc; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
[ -f /usr/lib/grub/i386-pc/boot.img ] || missing="$missing grub-pc-bin"
if [ -n "$missing" ]; then
    echo "build-image: installing$missing"
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $missing >/dev/null
fi

T0=$(date +%s.%N)
lap() { printf '== %s (%.0f s)\n' "$1" "$(echo "$(date +%s.%N) - $T0" | bc)"; }
# A failed mmdebstrap can leave its bind mounts in the tree: unmount them before deleting it.
grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
cp "$DEB" "$WORK/"
sed "s|@SETUP_TOKEN_FILE@|$SETUP_TOKEN_FILE|" "$HERE/parlour-banner.path" > "$WORK/parlour-banner.path"
SECURITY=${MIRROR%/debian}/debian-security

# 1. The root tree. A local .deb must be its own --include= with a path, plus the file-mirror-automount
#    hook (RECIPES §6 pitfall). Hooks run with the tree as "$1".
mmdebstrap --variant=minbase \
    --include=systemd-sysv,linux-image-amd64,udev,dbus,iproute2,netbase,e2fsprogs,ca-certificates \
    --include=systemd-resolved,systemd-timesyncd,unattended-upgrades,less,nano,cloud-guest-utils \
    --include="$WORK/$(basename "$DEB")" \
    --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --customize-hook='echo parlour > "$1/etc/hostname"' \
    --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 parlour\n::1 localhost ip6-localhost ip6-loopback\n" > "$1/etc/hosts"' \
    --customize-hook='echo "LABEL=parlour-root / ext4 errors=remount-ro 0 1" > "$1/etc/fstab"' \
    --customize-hook='mkdir -p "$1/etc/systemd/network" && printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n\n[Link]\nRequiredForOnline=routable\nRequiredFamilyForOnline=ipv4\n" > "$1/etc/systemd/network/20-wired.network"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd systemd-resolved systemd-timesyncd' \
    --customize-hook="rm -f \"\$1/etc/apt/sources.list\"; printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' '$MIRROR' '$SUITE' '$SUITE' '$SECURITY' '$SUITE' > \"\$1/etc/apt/sources.list.d/debian.sources\"" \
    --customize-hook='printf "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n" > "$1/etc/apt/apt.conf.d/20auto-upgrades"' \
    --customize-hook="install -m 0644 '$HERE/parlour.sources' \"\$1/etc/apt/sources.list.d/parlour.sources\"" \
    --customize-hook="install -m 0644 '$HERE/52parlour-unattended-upgrades' \"\$1/etc/apt/apt.conf.d/52parlour-unattended-upgrades\"" \
    --customize-hook="install -m 0755 '$HERE/parlour-grow-root' \"\$1/usr/local/sbin/parlour-grow-root\"" \
    --customize-hook="install -m 0644 '$HERE/parlour-grow-root.service' \"\$1/etc/systemd/system/\"" \
    --customize-hook='chroot "$1" systemctl enable parlour-grow-root.service systemd-networkd-wait-online.service' \
    --customize-hook="mkdir -p \"\$1/etc/systemd/system/parlour.service.d\" && install -m 0644 '$HERE/parlour-console.conf' \"\$1/etc/systemd/system/parlour.service.d/console.conf\"" \
    --customize-hook="install -m 0755 '$HERE/parlour-banner' \"\$1/usr/local/sbin/parlour-banner\"" \
    --customize-hook="install -m 0644 '$HERE/parlour-banner.service' '$WORK/parlour-banner.path' \"\$1/etc/systemd/system/\"" \
    --customize-hook="printf 'PARLOUR_SETUP_TOKEN_FILE=%s\n' '$SETUP_TOKEN_FILE' > \"\$1/etc/default/parlour-banner\"" \
    --customize-hook='chroot "$1" systemctl enable parlour-banner.service parlour-banner.path' \
    --customize-hook='mkdir -p "$1/etc/systemd/system.conf.d" && printf "# Parlour VM image: on a slow or busy host udev can take longer than the default 90 s to announce\n# the serial port, and the console (login prompt and the banner with the setup link) would be lost.\n[Manager]\nDefaultDeviceTimeoutSec=600s\n" > "$1/etc/systemd/system.conf.d/parlour-devices.conf"' \
    --customize-hook='rm -f "$1/etc/parlour/parlour.toml" && chroot "$1" chown _parlour:_parlour /etc/parlour && chmod 0750 "$1/etc/parlour"' \
    --customize-hook='echo root:parlour | chroot "$1" chpasswd && chroot "$1" chage -d 0 root' \
    --customize-hook='rm -f "$1/etc/machine-id" "$1/var/lib/dbus/machine-id" && touch "$1/etc/machine-id"' \
    "$SUITE" "$WORK/rootfs" "$MIRROR" >"$WORK/mmdebstrap.log" 2>&1 || {
        tail -30 "$WORK/mmdebstrap.log" >&2; echo "build-image: mmdebstrap failed" >&2; exit 1; }
for f in vmlinuz initrd.img; do
    [ -e "$WORK/rootfs/$f" ] || { echo "build-image: /$f symlink missing in the tree" >&2; exit 1; }
done
# What the image promises: the service on, setup mode on first boot, security upgrades on, no SSH.
R=$WORK/rootfs
for promise in \
    "parlour enabled:test -L $R/etc/systemd/system/multi-user.target.wants/parlour.service" \
    "banner enabled:test -L $R/etc/systemd/system/multi-user.target.wants/parlour-banner.path" \
    "banner follows the address:grep -q '^PathChanged=/run/systemd/netif/leases' $R/etc/systemd/system/parlour-banner.path" \
    "console waits for its device:grep -q '^DefaultDeviceTimeoutSec=600s' $R/etc/systemd/system.conf.d/parlour-devices.conf" \
    "no config (setup mode):test ! -e $R/etc/parlour/parlour.toml" \
    "/etc/parlour writable by _parlour:test $(stat -c %u "$R/etc/parlour") = $(chroot "$R" id -u _parlour)" \
    "unattended upgrades:grep -q 'Unattended-Upgrade \"1\"' $R/etc/apt/apt.conf.d/20auto-upgrades" \
    "apt timers:test -L $R/etc/systemd/system/timers.target.wants/apt-daily-upgrade.timer" \
    "root grows to the disk:test -L $R/etc/systemd/system/multi-user.target.wants/parlour-grow-root.service" \
    "growpart installed:test -x $R/usr/bin/growpart" \
    "network-online waits for DHCP:test -L $R/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service" \
    "parlour apt source:grep -q '^Enabled: no' $R/etc/apt/sources.list.d/parlour.sources" \
    "no SSH server:test ! -e $R/usr/sbin/sshd"; do
    sh -c "${promise#*:}" || { echo "build-image: check failed: ${promise%%:*}" >&2; exit 1; }
done
lap "root tree $(du -sm "$R" | cut -f1) MB ($SUITE, $(ls "$WORK/rootfs/boot" | sed -n 's/^vmlinuz-//p'))"

# 2. A bootable raw disk without loop devices or mounts: ext4 made from the tree, GRUB's boot.img in the
#    MBR and core.img in the gap before the partition. /vmlinuz and /initrd.img are the symlinks the
#    kernel package maintains, so kernel upgrades inside the VM keep booting.
mkdir -p "$WORK/rootfs/boot/grub"
cat > "$WORK/rootfs/boot/grub/grub.cfg" <<'EOF'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
menuentry "Parlour" {
  linux /vmlinuz root=LABEL=parlour-root ro console=tty0 console=ttyS0,115200n8 quiet
  initrd /initrd.img
}
EOF
IMG=$WORK/parlour.raw
truncate -s "${SIZE_MB}M" "$IMG"
echo 'start=2048, type=83, bootable' | sfdisk -q "$IMG"
mke2fs -q -t ext4 -L parlour-root -O ^64bit -d "$WORK/rootfs" "$WORK/root.ext4" "$((SIZE_MB - 1))M"
dd if="$WORK/root.ext4" of="$IMG" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$WORK/root.ext4"
printf 'set root=(hd0,msdos1)\nset prefix=(hd0,msdos1)/boot/grub\nconfigfile /boot/grub/grub.cfg\n' > "$WORK/early.cfg"
grub-mkimage -O i386-pc -o "$WORK/core.img" -c "$WORK/early.cfg" -p '(hd0,msdos1)/boot/grub' \
    biosdisk part_msdos ext2 linux normal configfile serial terminal echo test search
dd if=/usr/lib/grub/i386-pc/boot.img of="$IMG" bs=440 count=1 conv=notrunc status=none   # keeps the partition table
dd if="$WORK/core.img" of="$IMG" bs=512 seek=1 conv=notrunc status=none
lap "raw disk $IMG ($(du -m "$IMG" | cut -f1) MB allocated of $SIZE_MB MB)"

# 3. Distribution formats.
qemu-img convert -c -O qcow2 "$IMG" "$OUT/parlour-$VERSION.qcow2" &
qemu-img convert -O vmdk -o subformat=streamOptimized "$IMG" "$OUT/parlour-$VERSION.vmdk"
wait $!
lap "qcow2 + vmdk"
ls -l "$OUT/parlour-$VERSION.qcow2" "$OUT/parlour-$VERSION.vmdk" | awk '{printf "   %s %d bytes (%.0f MB)\n", $NF, $5, $5/1e6}'
