"""This machine's addresses from the kernel over netlink, as the service must find them: its sandbox
refuses what `ip` does at start (it dropped capabilities with capset, refused by the unit's system call
filter), so the setup URL said 127.0.0.1. Checked in a private network namespace whose only LAN address
is on a veth interface, with no default route and no `ip` on PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
    reason="needs Linux, root, unshare and ip (a private network namespace with a veth interface)",
)

NETNS = """ip link set lo up
ip link add lan0 type veth peer name lan0p
ip link set lan0 up
ip link set lan0p up
ip addr add 192.0.2.15/24 dev lan0
ip -6 addr add 2001:db8::15/64 dev lan0 nodad
ip -j addr > "$OUT/ip.json"
PATH=/nonexistent exec "$PYTHON" -c "$CODE"
"""
CODE = """import json, os
from appliance.net import interfaces
print(json.dumps({"netlink": interfaces._from_netlink(), "lan": interfaces.lan_addresses()}))
"""


def test_the_addresses_come_from_netlink_without_ip_or_a_default_route(tmp_path: Path) -> None:
    env = {"OUT": str(tmp_path), "PYTHON": sys.executable, "CODE": CODE, "PYTHONPATH": str(ROOT),
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    done = subprocess.run(["unshare", "-n", "sh", "-ec", NETNS], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    seen = json.loads(done.stdout)
    by_ip = {info["local"] for link in json.loads((tmp_path / "ip.json").read_text())
             for info in link.get("addr_info", [])}
    assert set(seen["netlink"]) == by_ip  # the same list `ip -j addr` gives
    assert {"127.0.0.1", "192.0.2.15", "2001:db8::15"} <= set(seen["netlink"])
    assert seen["lan"][:2] == ["192.0.2.15", "2001:db8::15"]
