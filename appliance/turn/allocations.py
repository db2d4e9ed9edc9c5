"""TURN allocations (RFC 8656 §7 to §12): a relayed UDP port per client 5-tuple, its permissions and channels,
the relay port range and the per-user and total quotas."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.turn.stun import Address
from appliance.turn.udp import UdpEndpoint

log = logging.getLogger(__name__)

PERMISSION_LIFETIME = 300.0  # RFC 8656 §9
CHANNEL_LIFETIME = 600.0  # RFC 8656 §12
RESERVATION_LIFETIME = 30.0  # RFC 8656 §7.2: a reserved port (EVEN-PORT R bit) is held about 30 s
PORT_TRIES = 40


class QuotaReached(Exception):
    """486: this user, or the server, holds as many allocations as it may."""


class NoRelayPort(Exception):
    """508: no port of the relay range could be bound."""


# A client's view: (transport "udp"/"tcp", client address, server address) — RFC 8656's 5-tuple.
FiveTuple = tuple[str, Address, Address]
Sender = Callable[[bytes], None]  # sends bytes to the client over its own transport
PeerHandler = Callable[["Allocation", bytes, Address], None]


@dataclass(eq=False)
class Allocation:
    """One allocation: the relay socket, the client's transport, permissions and channels."""

    five_tuple: FiveTuple
    user: str
    username: str
    key: bytes
    relay: UdpEndpoint  # the relayed transport address: datagrams from peers go to Allocations.on_peer_data
    relayed: Address
    send_to_client: Sender
    expires: float
    permissions: dict[str, float] = field(default_factory=dict)  # peer IP -> expiry
    channels: dict[int, tuple[Address, float]] = field(default_factory=dict)  # channel -> (peer, expiry)
    channel_of: dict[Address, int] = field(default_factory=dict)
    last_transaction: tuple[bytes, bytes] | None = None  # (transaction id, response) for retransmits
    relayed_bytes: int = 0

    def permitted(self, ip: str, now: float) -> bool:
        return self.permissions.get(ip, 0.0) > now

    def permit(self, ip: str, now: float) -> None:
        self.permissions[ip] = now + PERMISSION_LIFETIME

    def bind_channel(self, channel: int, peer: Address, now: float) -> bool:
        """Bind or refresh; False when the channel or the peer is bound otherwise (RFC 8656 §11.2)."""
        bound = self.channels.get(channel)
        if bound is not None and bound[0] != peer:
            return False
        if self.channel_of.get(peer, channel) != channel:
            return False
        self.channels[channel] = (peer, now + CHANNEL_LIFETIME)
        self.channel_of[peer] = channel
        self.permit(peer[0], now)
        return True

    def expire(self, now: float) -> None:
        for ip in [ip for ip, until in self.permissions.items() if until <= now]:
            del self.permissions[ip]
        for channel in [c for c, (_, until) in self.channels.items() if until <= now]:
            peer, _ = self.channels.pop(channel)
            self.channel_of.pop(peer, None)

    def close(self) -> None:
        self.relay.close()


@dataclass(eq=False)
class Reservation:
    """The odd port kept after an EVEN-PORT allocation with the R bit, until its token is used."""

    relay: UdpEndpoint
    address: Address
    expires: float


class Allocations:
    """Every allocation of the server, keyed by 5-tuple, with the relay ports and quotas."""

    def __init__(self, *, relay_ip: str, min_port: int, max_port: int, user_quota: int, total_quota: int,
                 on_peer_data: PeerHandler) -> None:
        self.relay_ip = relay_ip
        self.min_port, self.max_port = min_port, max_port
        self.user_quota, self.total_quota = user_quota, total_quota
        self.on_peer_data = on_peer_data
        self.by_tuple: dict[FiveTuple, Allocation] = {}
        self.reservations: dict[bytes, Reservation] = {}

    def __len__(self) -> int:
        return len(self.by_tuple)

    def get(self, five_tuple: FiveTuple) -> Allocation | None:
        return self.by_tuple.get(five_tuple)

    def count_of(self, user: str) -> int:
        return sum(1 for a in self.by_tuple.values() if a.user == user)

    async def create(self, five_tuple: FiveTuple, *, user: str, username: str, key: bytes, lifetime: float,
                     send_to_client: Sender, even_port: bool = False, reserve_next: bool = False,
                     token: bytes | None = None, dont_fragment: bool = False) -> tuple[Allocation, bytes | None]:
        """A new allocation; with `reserve_next` also a reservation token for the next (odd) port."""
        if len(self.by_tuple) >= self.total_quota or self.count_of(user) >= self.user_quota:
            raise QuotaReached
        holder: list[Allocation] = []

        def deliver(data: bytes, peer: Address) -> None:
            if holder:
                self.on_peer_data(holder[0], data, peer)

        new_token = None
        if token is not None:
            reserved = self.reservations.pop(token, None)
            if reserved is None:
                raise NoRelayPort
            transport, relayed = reserved.relay, reserved.address
            transport.on_datagram = deliver
        else:
            transport, relayed = await self._bind(deliver, even=even_port, pair=reserve_next)
            if reserve_next:
                new_token = os.urandom(8)
                odd = UdpEndpoint.bind(self.relay_ip, relayed[1] + 1, lambda _d, _a: None)
                until = time.monotonic() + RESERVATION_LIFETIME
                self.reservations[new_token] = Reservation(odd, (self.relay_ip, relayed[1] + 1), until)
        if dont_fragment:
            _set_dont_fragment(transport)
        allocation = Allocation(five_tuple, user, username, key, transport, relayed, send_to_client,
                                expires=time.monotonic() + lifetime)
        holder.append(allocation)
        self.by_tuple[five_tuple] = allocation
        return allocation, new_token

    def remove(self, allocation: Allocation) -> None:
        if self.by_tuple.get(allocation.five_tuple) is allocation:
            del self.by_tuple[allocation.five_tuple]
        allocation.close()

    def sweep(self, now: float) -> int:
        """Drop expired allocations, permissions, channels and reservations; the number of allocations gone."""
        gone = [a for a in self.by_tuple.values() if a.expires <= now]
        for allocation in gone:
            self.remove(allocation)
        for allocation in self.by_tuple.values():
            allocation.expire(now)
        for token in [t for t, r in self.reservations.items() if r.expires <= now]:
            self.reservations.pop(token).relay.close()
        return len(gone)

    def close(self) -> None:
        for allocation in list(self.by_tuple.values()):
            self.remove(allocation)
        for reservation in self.reservations.values():
            reservation.relay.close()
        self.reservations.clear()

    async def _bind(self, deliver: Callable[[bytes, Address], None], *, even: bool,
                    pair: bool) -> tuple[UdpEndpoint, Address]:
        for _ in range(PORT_TRIES):
            port = random.randint(self.min_port, self.max_port - (1 if pair else 0))
            if even or pair:
                port -= port % 2
                if port < self.min_port:
                    continue
            if pair and not self._port_free(port + 1):
                continue
            with contextlib.suppress(OSError):
                return UdpEndpoint.bind(self.relay_ip, port, deliver), (self.relay_ip, port)
        raise NoRelayPort

    def _port_free(self, port: int) -> bool:
        family = socket.AF_INET6 if ipaddress.ip_address(self.relay_ip).version == 6 else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((self.relay_ip, port))
            except OSError:
                return False
        return True


def _set_dont_fragment(relay: UdpEndpoint) -> None:
    sock = relay.sock
    if sock.family == socket.AF_INET and hasattr(socket, "IP_MTU_DISCOVER"):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MTU_DISCOVER, socket.IP_PMTUDISC_DO)
