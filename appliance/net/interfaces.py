"""This machine's own IP addresses (for the setup URL and the server-name check), without heavy deps.

psutil is used when it is installed; otherwise `ip -j addr` (Linux); otherwise what the host name
resolves to plus the address the default route would use.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import socket
import subprocess

__all__ = ["lan_addresses", "local_addresses"]


def local_addresses() -> list[str]:
    """Every address of this machine, loopback included, without duplicates, IPv4 first."""
    found: list[str] = []
    for source in (_from_psutil, _from_ip_command, _from_resolver):
        with contextlib.suppress(Exception):
            found = source()
        if found:
            break
    found += ["127.0.0.1", "::1"]
    unique = list(dict.fromkeys(a.split("%")[0] for a in found))
    return sorted(unique, key=lambda a: (":" in a, a))


def lan_addresses() -> list[str]:
    """Addresses other machines can reach: neither loopback nor link-local."""
    out = []
    for text in local_addresses():
        ip = ipaddress.ip_address(text)
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            out.append(text)
    return out


def _from_psutil() -> list[str]:
    import psutil  # optional

    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family in (socket.AF_INET, socket.AF_INET6)]


def _from_ip_command() -> list[str]:
    ip = shutil.which("ip")
    if ip is None:
        return []
    out = subprocess.run([ip, "-j", "addr"], capture_output=True, text=True, timeout=5, check=True).stdout
    return [info["local"] for link in json.loads(out) for info in link.get("addr_info", []) if "local" in info]


def _from_resolver() -> list[str]:
    """What the host name resolves to, plus the address of the default route. The second is the one that
    matters under the systemd unit, whose sandbox has no netlink (so neither psutil nor `ip` work), and
    it is missing until DHCP has given the machine a route: each part may fail on its own."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        found += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)]
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("192.0.2.1", 9))  # no packet is sent
        found.append(sock.getsockname()[0])
    return found
