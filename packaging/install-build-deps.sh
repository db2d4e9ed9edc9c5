#!/bin/sh
# Install the Debian tools the package targets need, when missing (RECIPES.md §1). Called by
# `make package-deps` (and so by `make package-check`). Needs root for apt-get; does nothing when
# everything is there.
set -eu
missing=
for pair in dpkg-buildpackage:dpkg-dev dh:debhelper lintian:lintian mmdebstrap:mmdebstrap bc:bc \
            strip:binutils objdump:binutils patchelf:patchelf systemd-analyze:systemd nsenter:util-linux; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
# `make deb-systemd-test` only
if [ "${WITH_NSPAWN:-0}" = 1 ] && ! command -v systemd-nspawn >/dev/null 2>&1; then
    missing="$missing systemd-container"
fi
if [ -n "$missing" ]; then
    echo "install-build-deps: installing$missing"
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $missing >/dev/null
fi
# PyInstaller needs a shared libpython (pyenv's Python has one; Debian's needs libpython3.11).
python3 -c 'import sys, sysconfig; sys.exit(0 if sysconfig.get_config_var("Py_ENABLE_SHARED") else 1)' || {
    ver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    if ! ldconfig -p | grep -q "libpython$ver.so"; then
        apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "libpython$ver" >/dev/null
    fi
}
