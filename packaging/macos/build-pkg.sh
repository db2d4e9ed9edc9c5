#!/bin/sh
# Build dist/macos/Parlour-<version>-<arch>.pkg on macOS (RECIPES.md §8). NOT RUN HERE: the Linux build
# host has no Apple tools; this is the plan for a macOS CI runner (.github/workflows/build.yml), to be
# checked on its first run.
#
#   packaging/macos/build-pkg.sh            unsigned package (fine for testing: right-click > Open)
#   SIGN_APP="Developer ID Application: … (TEAMID)" SIGN_PKG="Developer ID Installer: … (TEAMID)" \
#   NOTARY_PROFILE=parlour packaging/macos/build-pkg.sh
#                                           signed, notarized and stapled (keychain profile made with
#                                           `xcrun notarytool store-credentials parlour ...`)
#
# Layout: /usr/local/parlour/bin/parlour (PyInstaller one-file), /Library/LaunchDaemons/
# org.parlour.server.plist, data in /Library/Application Support/Parlour (appliance/platform/paths.py),
# log in /Library/Logs/Parlour. Build on the oldest macOS to support: the executable runs there and later.
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
[ "$(uname -s)" = Darwin ] || { echo "build-pkg: macOS only" >&2; exit 2; }
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' appliance/__init__.py)
ARCH=$(uname -m)
PYTHON=${PYTHON:-python3}
W=$ROOT/build/macos
OUT=$ROOT/dist/macos
rm -rf "$W" && mkdir -p "$W" "$OUT"

# 1. The executable: the same spec as Linux (packaging/parlour.spec), in a build venv.
"$PYTHON" -m venv "$W/venv"
"$W/venv/bin/python" -m pip install --quiet --upgrade pip
"$W/venv/bin/python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
    > "$W/requirements.txt"
"$W/venv/bin/python" -m pip install --quiet -r "$W/requirements.txt" 'pyinstaller>=6.10,<7'
"$W/venv/bin/pyinstaller" --noconfirm --clean --log-level WARN --distpath "$W/dist" --workpath "$W/pyinstaller" \
    packaging/parlour.spec
if [ -n "${SIGN_APP:-}" ]; then
    # Hardened runtime + secure timestamp, as notarization requires; the one-file executable unpacks
    # its libraries at run time, hence the entitlements.
    codesign --force --options runtime --timestamp --entitlements packaging/macos/entitlements.plist \
        --sign "$SIGN_APP" "$W/dist/parlour"
fi
"$W/dist/parlour" version

# 2. The package: payload + scripts.
STAGE=$W/root
install -d "$STAGE/usr/local/parlour/bin" "$STAGE/Library/LaunchDaemons"
install -m 0755 "$W/dist/parlour" "$STAGE/usr/local/parlour/bin/parlour"
install -m 0644 packaging/macos/org.parlour.server.plist "$STAGE/Library/LaunchDaemons/"
PKG=$OUT/Parlour-$VERSION-$ARCH.pkg
pkgbuild --root "$STAGE" --scripts packaging/macos/scripts --identifier org.parlour.server \
    --version "$VERSION" --install-location / "$W/parlour-component.pkg"
if [ -n "${SIGN_PKG:-}" ]; then
    productbuild --package "$W/parlour-component.pkg" --sign "$SIGN_PKG" "$PKG"
else
    productbuild --package "$W/parlour-component.pkg" "$PKG"
fi
if [ -n "${NOTARY_PROFILE:-}" ]; then
    xcrun notarytool submit "$PKG" --keychain-profile "$NOTARY_PROFILE" --wait
    xcrun stapler staple "$PKG"
fi
ls -l "$PKG"
