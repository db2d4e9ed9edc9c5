"""This machine's own IP addresses (for the setup URL and the server-name check), without heavy deps.

psutil is used when it is installed; otherwise the kernel's list over a netlink socket (Linux); otherwise
`ip -j addr`; otherwise what the host name resolves to plus the address the default route would use.
Under the systemd unit `ip` fails: it drops its capabilities at start (capset), which the unit's system
call filter refuses, so the service printed http://127.0.0.1:5280/setup on the VM's console; the netlink
socket (RestrictAddressFamilies allows AF_NETLINK) needs no subprocess and no privilege.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import socket
import struct
import subprocess

__all__ = ["lan_addresses", "local_addresses"]


def local_addresses() -> list[str]:
    """Every address of this machine, loopback included, without duplicates, IPv4 first."""
    found: list[str] = []
    for source in (_from_psutil, _from_netlink, _from_ip_command, _from_resolver):
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


# rtnetlink (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h)
_NLMSG_HEADER = struct.Struct("=LHHLL")  # length, type, flags, sequence, port
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, interface index
_RTATTR = struct.Struct("=HH")  # length, type
_NLMSG_ERROR, _NLMSG_DONE, _RTM_NEWADDR, _RTM_GETADDR = 2, 3, 20, 22
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_IFA_ADDRESS, _IFA_LOCAL = 1, 2


def _from_netlink() -> list[str]:
    """Linux: every address the kernel has (an RTM_GETADDR dump on a NETLINK_ROUTE socket)."""
    netlink = getattr(socket, "AF_NETLINK", None)
    if netlink is None:
        return []
    found: list[str] = []
    with socket.socket(netlink, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5)
        sock.bind((0, 0))
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        sock.send(_NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(body), _RTM_GETADDR, _NLM_F_REQUEST | _NLM_F_DUMP,
                                     1, 0) + body)
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSG_HEADER.size <= len(data):
                length, kind, _flags, _seq, _port = _NLMSG_HEADER.unpack_from(data, offset)
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR or length < _NLMSG_HEADER.size:
                    raise OSError("netlink: the address dump failed")
                if kind == _RTM_NEWADDR:
                    address = _address_of(data, offset + _NLMSG_HEADER.size, offset + length)
                    if address:
                        found.append(address)
                offset += (length + 3) & ~3


def _address_of(data: bytes, start: int, end: int) -> str | None:
    """The address in one RTM_NEWADDR message: IFA_LOCAL (IPv4; IFA_ADDRESS is the peer on
    point-to-point links), else IFA_ADDRESS (IPv6)."""
    family = _IFADDRMSG.unpack_from(data, start)[0]
    attrs: dict[int, bytes] = {}
    at = start + _IFADDRMSG.size
    while at + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, at)
        if length < _RTATTR.size:
            break
        attrs[kind] = data[at + _RTATTR.size : at + length]
        at += (length + 3) & ~3
    raw = attrs.get(_IFA_LOCAL) or attrs.get(_IFA_ADDRESS)
    if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return socket.inet_ntop(family, raw)


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
