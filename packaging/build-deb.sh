#!/bin/sh
# Build the Debian package from dist/parlour-onedir, the one-folder build (RECIPES.md §3), and lint it.
# Called by `make deb`.
#
#   packaging/build-deb.sh              -> dist/parlour_<version>_amd64.deb, lintian --pedantic
#   DEB_VERSION=0.0.9 OUT=build/old packaging/build-deb.sh
#                                       -> the same package labelled 0.0.9 (for upgrade tests)
#   DEFAULT_TOML=file DEB_VERSION=...   -> with another packaged default parlour.toml (upgrade tests)
#
# dpkg-buildpackage runs in a staging copy under build/deb, so neither the checkout (debian/parlour/,
# debian/files, ...) nor its parent folder (where the .deb would land) gets build outputs.
# The version comes from appliance.__version__; when debian/changelog does not have it yet, the
# staging copy gets an automatic changelog entry.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
APP_VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' appliance/__init__.py)
VERSION=${DEB_VERSION:-$APP_VERSION}
OUT=${OUT:-dist}
LINTIAN=${LINTIAN:-1}
test -x dist/parlour-onedir/parlour || { echo "build-deb: dist/parlour-onedir is missing; run make dist" >&2; exit 1; }

# debian/copyright must name everything the build bundles: each top-level entry of _internal/ (shared
# libraries, packages with binaries or data) and each distribution of the build venv (pure-Python ones
# live in the archive inside the executable), build tools aside. Libraries a wheel brings (auditwheel
# names them lib<name>-<8 hex digits>) are named without that hash.
unnamed=
for name in $( { ls dist/parlour-onedir/_internal | sed -e 's/\.cpython-.*//' -e 's/\.abi3.*//' -e 's/\.so.*//' \
                     -e 's/-[0-9][0-9.a-z]*\.dist-info$//' -e 's/\.dist-info$//' \
                     -e 's/-[0-9a-f]\{8\}$//';
                 build/venv/bin/python -c 'import importlib.metadata as m; print("\n".join(d.metadata["Name"] for d in m.distributions()))';
               } | sort -u); do
    case $name in
        appliance|base_library.zip|python3.11|pip|setuptools|pyinstaller|pyinstaller-hooks-contrib|altgraph) continue ;;
    esac
    grep -qiF -- "$name" debian/copyright || unnamed="$unnamed $name"
done
[ -z "$unnamed" ] || { echo "build-deb: debian/copyright does not name the bundled:$unnamed" >&2; exit 1; }
# The web chat the build carries, at the version debian/copyright states.
chat=dist/parlour-onedir/_internal/appliance/web/static/chat/VERSION
test -f "$chat" || { echo "build-deb: the build has no web chat; run make webchat, then make dist" >&2; exit 1; }
grep -qF "Converse.js $(cat "$chat")" debian/copyright \
    || { echo "build-deb: debian/copyright does not name Converse.js $(cat "$chat") (the web chat)" >&2; exit 1; }

STAGE=$ROOT/build/deb/$VERSION
rm -rf "$STAGE"
PKG=$STAGE/parlour-$VERSION
mkdir -p "$PKG/dist" "$PKG/packaging"
cp -a debian systemd "$PKG/"
cp -a dist/parlour-onedir "$PKG/dist/"
cp -a packaging/parlour.toml packaging/parlour.1 "$PKG/packaging/"
[ -z "${DEFAULT_TOML:-}" ] || cp "$DEFAULT_TOML" "$PKG/packaging/parlour.toml"
sed -i "1s/\"parlour [^\"]*\"/\"parlour $APP_VERSION\"/" "$PKG/packaging/parlour.1"

CHANGELOG_VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ "$CHANGELOG_VERSION" != "$VERSION" ]; then
    echo "build-deb: debian/changelog says $CHANGELOG_VERSION; packaging $VERSION with an automatic entry"
    {
        printf 'parlour (%s) unstable; urgency=medium\n\n' "$VERSION"
        printf '  * Version %s (automatic entry; see the project history).\n\n' "$VERSION"
        printf ' -- Parlour Developers <dev@parlour.example>  %s\n\n' "$(date -R)"
        if dpkg --compare-versions "$VERSION" gt "$CHANGELOG_VERSION"; then cat debian/changelog; fi
    } > "$PKG/debian/changelog"
fi

t0=$(date +%s.%N)
(cd "$PKG" && dpkg-buildpackage -us -uc -b >"$STAGE/build.log" 2>&1) || {
    cat "$STAGE/build.log" >&2; echo "build-deb: dpkg-buildpackage failed" >&2; exit 1; }
t1=$(date +%s.%N)
DEB=parlour_${VERSION}_amd64.deb
mkdir -p "$OUT"
cp "$STAGE/$DEB" "$OUT/"
echo "build-deb: $OUT/$DEB $(stat -c %s "$OUT/$DEB") bytes, dpkg-buildpackage $(echo "$t1 - $t0" | bc) s"

if [ "$LINTIAN" = 1 ]; then
    # Clean apart from debian/parlour.lintian-overrides; "I:"/"P:" tags count too (--pedantic).
    rc=0
    lintian -i -I -E --pedantic --fail-on error,warning,info,pedantic,experimental \
        "$STAGE/parlour_${VERSION}_amd64.changes" >"$STAGE/lintian.log" 2>&1 || rc=$?
    grep -v 'running with root privileges' "$STAGE/lintian.log" || true
    [ "$rc" = 0 ] || { echo "build-deb: lintian found problems (above)" >&2; exit 1; }
    t2=$(date +%s.%N)
    echo "build-deb: lintian --pedantic clean ($(echo "$t2 - $t1" | bc) s)"
fi
