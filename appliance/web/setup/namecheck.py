"""The server-name check of the wizard: does the name resolve, to this machine, publicly or on the LAN?

A small resolver check (getaddrinfo in a thread); the ACME pre-flight (reachability from outside)
runs when a Let's Encrypt certificate is requested.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from appliance.config.spec import check_domain
from appliance.net.interfaces import local_addresses

RESOLVE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class NameCheck:
    """What the wizard tells about a name; `verdict` picks the advice and the suggested certificate."""

    name: str
    addresses: tuple[str, ...]
    verdict: str  # invalid | unresolved | public | lan | elsewhere | local-only
    here: bool  # at least one address belongs to this machine

    @property
    def suggested_certificate(self) -> str:
        return "acme" if self.verdict == "public" else "local"


def _classify(addresses: list[str], mine: set[str]) -> tuple[str, bool]:
    ips = [ipaddress.ip_address(a) for a in addresses]
    here = any(a in mine for a in addresses)
    if all(ip.is_loopback for ip in ips):
        return "local-only", True
    if any(ip.is_global for ip in ips):
        return "public", here
    return ("lan" if here else "elsewhere"), here


async def check_name(name: str) -> NameCheck:
    """Resolve `name` and compare with this machine's addresses (never raises)."""
    try:
        domain = check_domain(name)
    except ValueError:
        return NameCheck(name, (), "invalid", False)
    if "." not in domain and domain != "localhost":
        return NameCheck(domain, (), "invalid", False)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await asyncio.to_thread(socket.getaddrinfo, domain, None, 0, socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError):
        return NameCheck(domain, (), "unresolved", False)
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    mine = set(await asyncio.to_thread(local_addresses))
    verdict, here = _classify(addresses, mine)
    return NameCheck(domain, tuple(addresses), verdict, here)


__all__ = ["NameCheck", "check_name"]
