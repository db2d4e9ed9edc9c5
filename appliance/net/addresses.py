"""Helpers for peer addresses as asyncio reports them (``transport.get_extra_info("peername")``)."""

from __future__ import annotations

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
        ip = host
    elif isinstance(host, str):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
    else:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback
