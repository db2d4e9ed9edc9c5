#!/bin/sh
# Build dist/parlour, the one-file frozen executable (the portable download), and dist/parlour-onedir/,
# the one-folder build the .deb installs (RECIPES.md §2). Called by `make dist`.
#
# A build venv under build/venv gets Parlour's runtime dependencies (from pyproject.toml, without the
# test extra) and PyInstaller; Parlour itself is frozen from the source tree (packaging/parlour.spec).
# Needs a Python 3.11 with a shared libpython (pyenv's has it) and PyPI.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=build/venv
STAMP=$VENV/.installed

t0=$(date +%s.%N)
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ "$0" -nt "$STAMP" ]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # The runtime dependencies exactly as pyproject.toml lists them (markers included), no test extra.
    "$VENV/bin/python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > build/runtime-requirements.txt
    "$VENV/bin/python" -m pip install --quiet -r build/runtime-requirements.txt 'pyinstaller>=6.10,<7'
    touch "$STAMP"
fi
t1=$(date +%s.%N)
"$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/parlour.spec
t2=$(date +%s.%N)
mv dist/parlour-onedir/parlour-bin dist/parlour-onedir/parlour   # see parlour.spec
# A pyenv Python's extensions carry RUNPATH <pyenv>/lib, a path that means nothing on the target
# (lintian: custom-library-search-path); the bootloader finds _internal/ by itself.
find dist/parlour-onedir -name '*.so*' -type f | while read -r lib; do
    if [ -n "$(patchelf --print-rpath "$lib" 2>/dev/null)" ]; then patchelf --remove-rpath "$lib"; fi
done
dist/parlour version
dist/parlour-onedir/parlour version
echo "dist/parlour-onedir: $(du -sb dist/parlour-onedir | cut -f1) bytes in $(find dist/parlour-onedir -type f | wc -l) files"
echo "dist/parlour: $(stat -c %s dist/parlour) bytes; venv $(echo "$t1 - $t0" | bc) s, pyinstaller $(echo "$t2 - $t1" | bc) s"
