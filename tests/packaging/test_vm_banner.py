"""The VM image's console banner (packaging/vm/parlour-banner) in a private network namespace: it names
the machine's DHCP address, never a loopback one; before there is an address it says so and shows no
link; when the address changes, the next run (parlour-banner.path) shows the new one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BANNER = Path(__file__).parents[2] / "packaging" / "vm" / "parlour-banner"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
    reason="needs root, unshare and ip (a private network namespace with veth interfaces)",
)


def banner_in_netns(tmp_path: Path, setup: str) -> str:
    """Run the banner in a new network namespace after the `ip` commands of `setup`; return the banner."""
    token = tmp_path / "setup-token"
    token.write_text("tok3n_-x\n")
    out = tmp_path / "parlour.issue"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "PARLOUR_BANNER_OUT": str(out),
           "PARLOUR_SETUP_TOKEN_FILE": str(token)}
    subprocess.run(["unshare", "-n", "sh", "-ec", f"ip link set lo up\n{setup}\nexec sh {BANNER}"], env=env,
                   check=True, capture_output=True, text=True, timeout=60)
    return out.read_text()


DHCP = """ip link add lan0 type veth peer name lan0p
ip link set lan0 up
ip link set lan0p up
ip addr add {addr}/24 dev lan0
ip route add default via {gw} dev lan0"""


def test_before_dhcp_the_banner_says_it_waits_and_shows_no_loopback_link(tmp_path: Path) -> None:
    text = banner_in_netns(tmp_path, "")
    assert "waiting for an address from DHCP" in text
    assert "127." not in text and "\\4" not in text and "http://" not in text


def test_the_banner_names_the_address_of_the_default_route(tmp_path: Path) -> None:
    # Another interface with a global address but no default route comes first: not the one to show.
    other = ("ip link add side0 type veth peer name side0p\nip link set side0 up\nip link set side0p up\n"
             "ip addr add 198.51.100.7/24 dev side0\n")
    text = banner_in_netns(tmp_path, other + DHCP.format(addr="192.0.2.15", gw="192.0.2.2"))
    assert "on 192.0.2.15 (address from DHCP)" in text
    assert "http://192.0.2.15:5280/setup?token=tok3n_-x" in text
    assert "127." not in text and "198.51.100.7" not in text


def test_a_new_address_shows_at_the_next_run(tmp_path: Path) -> None:
    assert "http://192.0.2.15:5280/" in banner_in_netns(tmp_path, DHCP.format(addr="192.0.2.15", gw="192.0.2.2"))
    changed = banner_in_netns(tmp_path, DHCP.format(addr="203.0.113.40", gw="203.0.113.1"))
    assert "http://203.0.113.40:5280/setup?token=tok3n_-x" in changed and "192.0.2.15" not in changed
