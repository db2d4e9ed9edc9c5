# Shared by the package tests (sourced, POSIX sh). Needs root, mmdebstrap and a Debian mirror.
#
#   ROOT        the repository (set by the caller)
#   MIRROR      Debian mirror carrying bookworm (default http://deb.debian.org/debian)
#   BASE_TAR    cached minimal bookworm (mmdebstrap --variant=apt), build/chroot/bookworm-apt.tar;
#               made once, reused while it is younger than a day (REFRESH_BASE=1 remakes it)

MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE_TAR=${BASE_TAR:-$ROOT/build/chroot/bookworm-apt.tar}
APP_VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/appliance/__init__.py")
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

T_START=$(date +%s.%N)
T_LAST=$T_START
FAILURES=0

# step NAME: print the time since the previous step, then announce the next one.
step() {
    now=$(date +%s.%N)
    printf '  (%.1f s)\n== %s\n' "$(echo "$now - $T_LAST" | bc)" "$1"
    T_LAST=$now
}

total() {
    now=$(date +%s.%N)
    printf '  (%.1f s)\n== total %.1f s, %d failure(s)\n' "$(echo "$now - $T_LAST" | bc)" \
        "$(echo "$now - $T_START" | bc)" "$FAILURES"
}

ok() { echo "   ok   $*"; }
fail() { echo "   FAIL $*"; FAILURES=$((FAILURES + 1)); }

# check DESCRIPTION COMMAND...: run the command (on the host), ok if it succeeds.
check() {
    local what out; what=$1; shift
    if out=$("$@" 2>&1); then ok "$what"; else fail "$what"; printf '%s\n' "$out" | sed 's/^/        /'; fi
}

# contains DESCRIPTION TEXT REGEX: ok if a line of TEXT matches the (grep) REGEX.
contains() {
    if printf '%s\n' "$2" | grep -q -- "$3"; then ok "$1"; else fail "$1 (no line matching $3)"; fi
}

# stop_bg PID: end a background process this script started (if any) and reap it.
stop_bg() {
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

need_root_tools() {
    [ "$(id -u)" = 0 ] || { echo "needs root (chroot, mount)" >&2; exit 1; }
    for tool in mmdebstrap bc; do
        command -v $tool >/dev/null || { echo "needs $tool: apt-get install mmdebstrap bc" >&2; exit 1; }
    done
}

# base_tar: make the cached bookworm tarball unless a fresh one exists.
base_tar() {
    if [ -s "$BASE_TAR" ] && [ "${REFRESH_BASE:-0}" != 1 ] && \
       [ -n "$(find "$BASE_TAR" -mmin -1440 2>/dev/null)" ]; then
        echo "   base $BASE_TAR (cached)"
        return
    fi
    mkdir -p "$(dirname "$BASE_TAR")"
    rm -rf "$BASE_TAR" "$BASE_TAR.part"
    mmdebstrap --quiet --format=tar --variant=apt bookworm "$BASE_TAR.part" "$MIRROR" >/dev/null
    mv "$BASE_TAR.part" "$BASE_TAR"
    echo "   base $BASE_TAR ($(du -m "$BASE_TAR" | cut -f1) MB, new)"
}

# unpack_base DIR: a fresh chroot from the cached tarball, ready for apt.
unpack_base() {
    mkdir -p "$1"
    tar -C "$1" -xf "$BASE_TAR"
    cp /etc/resolv.conf "$1/etc/resolv.conf"
    # apt inside the chroot: no recommends, no questions, no dpkg lock fights.
    printf 'APT::Install-Recommends "0";\nDPkg::Lock::Timeout "900";\n' > "$1/etc/apt/apt.conf.d/90parlour-test"
}

# old_deb: the current package relabelled as 0.0.9, for upgrade tests (build/old/).
old_deb() {
    OLD_DEB=$ROOT/build/old/parlour_0.0.9_amd64.deb
    if [ ! -s "$OLD_DEB" ] || [ "$DEB" -nt "$OLD_DEB" ]; then
        # gzip -1: xz spends ~10 s to shrink the already compressed executable by 2 %
        DEB_VERSION=0.0.9 OUT=$ROOT/build/old LINTIAN=0 DPKG_DEB_COMPRESSOR_TYPE=gzip DPKG_DEB_COMPRESSOR_LEVEL=1 \
            "$ROOT/packaging/build-deb.sh" | sed 's/^/   /'
    fi
}

# newdefault_deb: the current package as version <app>+newdefault1 whose packaged default parlour.toml
# changed (a line added), for the upgrade test of the file the wizard rewrites (build/newdefault/).
newdefault_deb() {
    NEW_VERSION=${APP_VERSION}+newdefault1
    NEW_DEB=$ROOT/build/newdefault/parlour_${NEW_VERSION}_amd64.deb
    if [ ! -s "$NEW_DEB" ] || [ "$DEB" -nt "$NEW_DEB" ]; then
        mkdir -p "$ROOT/build/newdefault"
        { cat "$ROOT/packaging/parlour.toml"; echo "# A later release changed this default."; } \
            > "$ROOT/build/newdefault/parlour.toml"
        DEFAULT_TOML=$ROOT/build/newdefault/parlour.toml DEB_VERSION=$NEW_VERSION OUT=$ROOT/build/newdefault \
            LINTIAN=0 DPKG_DEB_COMPRESSOR_TYPE=gzip DPKG_DEB_COMPRESSOR_LEVEL=1 \
            "$ROOT/packaging/build-deb.sh" | sed 's/^/   /'
    fi
}
