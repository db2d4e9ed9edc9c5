"""Helpers for peer addresses as asyncio reports them (``transport.get_extra_info("peername")``)."""

from __future__ import annotations

import functools
import ipaddress

__all__ = ["peer_is_loopback"]


def peer_is_loopback(address: object) -> bool:
    """Whether a peer address is a loopback address (127.0.0.0/8, ::1, or ::ffff:127.x.y.z).

    Accepts an ``(host, port[, flowinfo, scope_id])`` tuple, a bare host string or an ``ipaddress``
    object. Anything else, including Unix-socket peers and host names, is not loopback: callers that
    trust local sockets decide that from the listener, not from a name.
    """
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return _ip_is_loopback(host)
    if isinstance(host, str):
        return _text_is_loopback(host)
    return False


@functools.lru_cache(maxsize=4096)
def _text_is_loopback(host: str) -> bool:
    """Memoised: every connection asks, and a busy server sees the same few addresses again and again."""
    try:
        return _ip_is_loopback(ipaddress.ip_address(host))
    except ValueError:
        return False


def _ip_is_loopback(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback
