"""A client on the LAN, not on loopback: curl in a network namespace joined to this one by a veth pair.

The server (in this process) listens on the pair's near address; `LanClient.fetch` runs curl in the
namespace, so requests arrive from a non-loopback address, as from another machine. Needs root and
`ip` (iproute2); the tests that use it are skipped otherwise. Everything is made per test and removed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from multidict import CIMultiDict

_serial = itertools.count()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: str


@dataclass(frozen=True, slots=True)
class LanClient:
    namespace: str
    server_ip: str  # where this process listens for the namespace
    client_ip: str

    async def fetch(self, url: str, *args: str) -> Answer:
        """One request with curl from the namespace (extra curl arguments in `args`); the last answer."""
        with tempfile.NamedTemporaryFile() as body:
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", self.namespace, "curl", "-sS", "--max-time", "10", "-D", "-",
                "-o", body.name, *args, url, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            text = Path(body.name).read_text(encoding="utf-8", errors="replace")
        last = [block for block in out.decode("latin-1").split("\r\n\r\n") if block.strip()][-1]
        status_line, *lines = last.split("\r\n")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines:
            name, _, value = line.partition(":")
            headers.add(name.strip(), value.strip())
        return Answer(int(status_line.split()[1]), headers, text)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def lan() -> Iterator[LanClient]:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("curl"):
        pytest.skip("needs root, iproute2 and curl for a network namespace")
    n = next(_serial)
    tag = f"{os.getpid() % 100_000}{n}"
    namespace, near, far = f"parlour-lan-{tag}", f"pl{tag}a", f"pl{tag}b"
    octet = (os.getpid() + n) % 250 + 3
    server_ip, client_ip = f"10.231.{octet}.1", f"10.231.{octet}.2"
    try:
        _ip("netns", "add", namespace)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot make a network namespace: {exc.stderr.decode().strip()}")
    try:
        _ip("link", "add", near, "type", "veth", "peer", "name", far)
        _ip("link", "set", far, "netns", namespace)
        _ip("addr", "add", f"{server_ip}/30", "dev", near)
        _ip("link", "set", near, "up")
        _ip("-n", namespace, "addr", "add", f"{client_ip}/30", "dev", far)
        _ip("-n", namespace, "link", "set", far, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        yield LanClient(namespace, server_ip, client_ip)
    finally:
        subprocess.run(["ip", "link", "del", near], capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
