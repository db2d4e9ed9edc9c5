"""A real apt state in a folder: a dpkg status file with Parlour installed and a flat repository with
another version, its package list fetched by `apt-get update` (a file: source, no network). apt and
dpkg read it with `-o Dir=<root>`, as they read / on a real machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

STANZA = """Package: parlour
{status}Priority: optional
Section: net
Installed-Size: 100
Maintainer: Parlour Developers <dev@parlour.example>
Architecture: {arch}
Version: {version}
{extra}Description: self-contained XMPP server appliance

"""


def apt_root(tmp_path: Path, *, installed: str | None, available: str | None) -> tuple[str, ...]:
    """Make the state under tmp_path; returns the apt options that point apt at it."""
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    root, repo = tmp_path / "apt-root", tmp_path / "apt-repo"
    for folder in ("etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d", "var/lib/dpkg",
                   "var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    repo.mkdir(exist_ok=True)
    (root / "var/lib/dpkg/status").write_text(
        STANZA.format(status="Status: install ok installed\n", arch=arch, version=installed, extra="")
        if installed else ""
    )
    (repo / "Packages").write_text(
        STANZA.format(status="", arch=arch, version=available,
                      extra=f"Filename: ./parlour_{available}_{arch}.deb\nSize: 1000\n")
        if available else ""
    )
    (root / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:{repo} ./\n")
    options = ("-o", f"Dir={root}")
    subprocess.run(["apt-get", *options, "-o", "APT::Sandbox::User=root", "-qq", "update"],
                   capture_output=True, text=True, check=True, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    return options
