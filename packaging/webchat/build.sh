#!/bin/sh
# Vendors the web chat into the package: installs the Converse.js release pinned in package-lock.json
# (exact version and integrity hash; `npm ci` refuses anything else) and copies the files a browser
# loads into appliance/web/static/chat/, which setuptools, PyInstaller and the .deb then carry.
# Nothing is fetched at run time: the server serves these files itself (no CDN, works on a LAN).
# Needs node and npm and the npm registry; run through `make webchat`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$(dirname "$here")")
out="$root/appliance/web/static/chat"

cd "$here"
npm ci --ignore-scripts --no-audit --no-fund --silent
dist=node_modules/converse.js/dist
version=$(node -p "require('./node_modules/converse.js/package.json').version")

# Assemble beside the target, then swap, so a failed copy never leaves half a chat behind.
stage=$(mktemp -d "$root/appliance/web/static/.chat-XXXXXX")
trap 'rm -rf "$stage"' EXIT
cp "$dist/converse.min.js" "$dist/converse.min.css" "$dist/emoji.json" \
   "$dist/shared-connection-worker.js" "$stage/"
# Source maps stay out (they are 10 MB and only serve a debugger); drop the reference to them too.
sed -i '/^\/\/# sourceMappingURL=/d' "$stage/converse.min.js"
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' "$stage/converse.min.css"
cp -R "$dist/images" "$dist/webfonts" "$dist/sounds" "$stage/"
# Translations: Converse loads the one for the browser's language on demand from chunkjs/locales/.
mkdir -p "$stage/chunkjs/locales"
for file in "$dist"/chunkjs/locales/*.js; do cp "$file" "$stage/chunkjs/locales/"; done
cp node_modules/converse.js/LICENSE "$stage/LICENSE.txt"
printf '%s\n' "$version" > "$stage/VERSION"
chmod -R u=rwX,go=rX "$stage"

rm -rf "$out.old"
[ ! -e "$out" ] || mv "$out" "$out.old"
mv "$stage" "$out"
trap - EXIT
rm -rf "$out.old"
echo "webchat: Converse.js $version in ${out#"$root/"} ($(du -sh "$out" | cut -f1))"
