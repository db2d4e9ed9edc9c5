"""The STUN and TURN server (RFC 8489, RFC 8656) on asyncio: UDP and TCP listeners (TLS optional), long-term
credentials from the TURN REST scheme, UDP relays.

Requests are answered by `TurnServer.handle`, whatever transport carried them; datagrams from peers come
back through `Allocations` to `_from_peer`, as Data indications or ChannelData.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.turn.allocations import Allocation, Allocations, FiveTuple, NoRelayPort, QuotaReached
from appliance.turn.credentials import RestCredentials
from appliance.turn.stun import (
    CHANNEL_MAX,
    CHANNEL_MIN,
    Address,
    Attr,
    Class,
    Message,
    Method,
    StunParseError,
    channel_data,
    frame_length,
    is_channel_data,
    parse,
    parse_channel_data,
)
from appliance.turn.udp import UdpEndpoint

log = logging.getLogger(__name__)

SOFTWARE = "Parlour TURN"
UDP_TRANSPORT = 17  # REQUESTED-TRANSPORT's protocol number: only UDP relays (RFC 6062's TCP relays are not offered)
SWEEP_INTERVAL = 5.0
MAX_TCP_FRAME = 65_535 + 20


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """What the server needs to run: where it listens, what it relays, and its limits."""

    secret: str
    realm: str
    relay_ip: str
    listen: tuple[str, ...] = ("0.0.0.0",)
    port: int = 3478
    tls_port: int = 0  # 0: no TURN over TLS
    min_port: int = 49152
    max_port: int = 65535
    default_lifetime: float = 600.0
    max_lifetime: float = 3600.0
    user_quota: int = 10
    total_quota: int = 1000
    denied_peers: tuple[str, ...] = ()  # networks never relayed to (loopback, the server's own …)
    external_ip: str = ""  # the address announced in XOR-RELAYED-ADDRESS when behind NAT; "": relay_ip


@dataclass
class TurnStats:
    allocations_made: int = 0
    auth_failures: int = 0
    relayed_packets: int = 0
    relayed_bytes: int = 0


class TurnServer:
    """`await start()` opens the listeners; `ports` tells what was bound; `await stop()` closes all."""

    def __init__(self, settings: TurnSettings, *, tls_context: Callable[[], ssl.SSLContext | None] | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.credentials = RestCredentials(settings.secret, settings.realm, now=now)
        self.allocations = Allocations(
            relay_ip=settings.relay_ip, min_port=settings.min_port, max_port=settings.max_port,
            user_quota=settings.user_quota, total_quota=settings.total_quota, on_peer_data=self._from_peer)
        self.denied = [ipaddress.ip_network(n, strict=False) for n in settings.denied_peers]
        self.tls_context = tls_context
        self.stats = TurnStats()
        self.ports: dict[str, int] = {}
        self._udp: list[UdpEndpoint] = []
        self._tcp: list[asyncio.Server] = []
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, int]:
        s = self.settings
        for host in s.listen:
            listener = UdpListener(self)
            endpoint = UdpEndpoint.bind(host, s.port or self.ports.get("turn_udp", 0), listener.datagram_received)
            listener.endpoint = endpoint
            self._udp.append(endpoint)
            self.ports.setdefault("turn_udp", endpoint.sockname[1])
            server = await asyncio.start_server(self._serve_stream, host, s.port or self.ports.get("turn_tcp", 0))
            self._tcp.append(server)
            self.ports.setdefault("turn_tcp", server.sockets[0].getsockname()[1])
            context = self.tls_context() if self.tls_context and s.tls_port else None
            if context is not None:
                tls = await asyncio.start_server(self._serve_stream, host, s.tls_port, ssl=context,
                                                 ssl_handshake_timeout=10)
                self._tcp.append(tls)
                self.ports.setdefault("turn_tls", tls.sockets[0].getsockname()[1])
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="turn-sweep")
        log.info("TURN server on %s, relaying from %s ports %d-%d", self.ports, s.relay_ip, s.min_port, s.max_port)
        return dict(self.ports)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for transport in self._udp:
            transport.close()
        for server in self._tcp:
            server.close()
        self.allocations.close()
        for server in self._tcp:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._udp.clear()
        self._tcp.clear()
        self.ports.clear()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.allocations.sweep(time.monotonic())

    # -- TCP and TLS: STUN messages and padded ChannelData, back to back ---------------------------

    async def _serve_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        transport = "tls" if writer.get_extra_info("sslcontext") is not None else "tcp"
        five_tuple: FiveTuple = (transport, (peer[0], peer[1]), (local[0], local[1]))
        try:
            while True:
                head = await reader.readexactly(4)
                length = frame_length(head)
                if length > MAX_TCP_FRAME:
                    break
                frame = head + await reader.readexactly(length - 4)
                await self.handle(frame, five_tuple, writer.write)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            allocation = self.allocations.get(five_tuple)
            if allocation is not None:  # RFC 8656 §5: a TCP allocation ends with its connection
                self.allocations.remove(allocation)
            writer.close()

    # -- everything the client sends -----------------------------------------------------------------

    async def handle(self, data: bytes, five_tuple: FiveTuple, send: Callable[[bytes], None]) -> None:
        if is_channel_data(data):
            self.relay_channel_data(data, five_tuple)
            return
        try:
            message = parse(data)
        except StunParseError:
            return  # RFC 8489 §6.3: malformed messages are dropped silently
        if message.cls == Class.INDICATION:
            if message.method == Method.SEND:
                self._send_indication(message, five_tuple)
            return
        if message.cls != Class.REQUEST:
            return
        reply = await self._answer(message, five_tuple, send)
        if reply is not None:
            send(reply)

    async def _answer(self, request: Message, five_tuple: FiveTuple, send: Callable[[bytes], None]) -> bytes | None:
        unknown = request.unknown_required()
        if unknown:
            return self._error(request, 420, "Unknown Attribute", extra=(
                Attr.UNKNOWN_ATTRIBUTES, b"".join(struct.pack("!H", u) for u in unknown)))
        if request.method == Method.BINDING:
            response = request.reply(Class.SUCCESS).add_xor_address(Attr.XOR_MAPPED_ADDRESS, five_tuple[1])
            return response.add_text(Attr.SOFTWARE, SOFTWARE).encode()
        if request.method not in (Method.ALLOCATE, Method.REFRESH, Method.CREATE_PERMISSION, Method.CHANNEL_BIND):
            return self._error(request, 400, "Bad Request")
        allocation = self.allocations.get(five_tuple)
        key, user, failure = self._authenticate(request, allocation)
        if failure is not None:
            return failure
        assert key is not None
        if request.method == Method.ALLOCATE:
            return await self._allocate(request, five_tuple, send, key, user, allocation)
        if allocation is None:
            return self._error(request, 437, "Allocation Mismatch", key=key)
        if request.method == Method.REFRESH:
            return self._refresh(request, allocation, key)
        if request.method == Method.CREATE_PERMISSION:
            return self._create_permission(request, allocation, key)
        return self._channel_bind(request, allocation, key)

    def _authenticate(self, request: Message, allocation: Allocation | None
                      ) -> tuple[bytes | None, str, bytes | None]:
        """(key, user, None) for a request with valid long-term credentials, else (None, "", error)."""
        username, nonce = request.text(Attr.USERNAME), request.get(Attr.NONCE)
        if not request.has(Attr.MESSAGE_INTEGRITY) or username is None or nonce is None or not request.has(Attr.REALM):
            return None, "", self._challenge(request, 401, "Unauthorized")
        if not self.credentials.nonce_fresh(nonce):
            return None, "", self._challenge(request, 438, "Stale Nonce")
        verdict = self.credentials.check(username)
        if verdict.key is None or not request.integrity_ok(verdict.key):
            self.stats.auth_failures += 1
            return None, "", self._challenge(request, 401, "Unauthorized")
        if allocation is not None and allocation.username != username:
            return None, "", self._error(request, 441, "Wrong Credentials")
        return verdict.key, verdict.user, None

    async def _allocate(self, request: Message, five_tuple: FiveTuple, send: Callable[[bytes], None],
                        key: bytes, user: str, existing: Allocation | None) -> bytes:
        if existing is not None:
            if existing.last_transaction and existing.last_transaction[0] == request.transaction_id:
                return existing.last_transaction[1]  # a retransmission gets the same answer
            return self._error(request, 437, "Allocation Mismatch", key=key)
        transport = request.unsigned(Attr.REQUESTED_TRANSPORT)
        if transport is None:
            return self._error(request, 400, "Bad Request: no REQUESTED-TRANSPORT", key=key)
        if transport >> 24 != UDP_TRANSPORT:
            return self._error(request, 442, "Unsupported Transport Protocol", key=key)
        family = request.get(Attr.REQUESTED_ADDRESS_FAMILY)
        relay_family = 2 if ":" in self.settings.relay_ip else 1
        if family is not None and (len(family) != 4 or family[0] != relay_family):
            return self._error(request, 440, "Address Family not Supported", key=key)
        even = request.get(Attr.EVEN_PORT)
        token = request.get(Attr.RESERVATION_TOKEN)
        if token is not None and even is not None:
            return self._error(request, 400, "Bad Request: EVEN-PORT with RESERVATION-TOKEN", key=key)
        try:
            allocation, new_token = await self.allocations.create(
                five_tuple, user=user, username=request.text(Attr.USERNAME) or "", key=key,
                lifetime=self._lifetime(request), send_to_client=send, even_port=even is not None,
                reserve_next=bool(even and even[0] & 0x80), token=token,
                dont_fragment=request.has(Attr.DONT_FRAGMENT))
        except QuotaReached:
            return self._error(request, 486, "Allocation Quota Reached", key=key)
        except NoRelayPort:
            return self._error(request, 508, "Insufficient Capacity", key=key)
        self.stats.allocations_made += 1
        response = request.reply(Class.SUCCESS)
        response.add_xor_address(Attr.XOR_RELAYED_ADDRESS, (self.settings.external_ip or allocation.relayed[0],
                                                            allocation.relayed[1]))
        response.add_unsigned(Attr.LIFETIME, int(allocation.expires - time.monotonic() + 0.5))
        if new_token is not None:
            response.add(Attr.RESERVATION_TOKEN, new_token)
        response.add_xor_address(Attr.XOR_MAPPED_ADDRESS, five_tuple[1])
        encoded = response.add_text(Attr.SOFTWARE, SOFTWARE).encode(key)
        allocation.last_transaction = (request.transaction_id, encoded)
        return encoded

    def _lifetime(self, request: Message) -> float:
        asked = request.unsigned(Attr.LIFETIME)
        s = self.settings
        return s.default_lifetime if asked is None else min(max(float(asked), s.default_lifetime), s.max_lifetime)

    def _refresh(self, request: Message, allocation: Allocation, key: bytes) -> bytes:
        asked = request.unsigned(Attr.LIFETIME)
        if asked == 0:
            self.allocations.remove(allocation)
            lifetime = 0
        else:
            lifetime = int(self._lifetime(request))
            allocation.expires = time.monotonic() + lifetime
        return request.reply(Class.SUCCESS).add_unsigned(Attr.LIFETIME, lifetime).encode(key)

    def _create_permission(self, request: Message, allocation: Allocation, key: bytes) -> bytes:
        peers = request.xor_addresses(Attr.XOR_PEER_ADDRESS)
        if not peers:
            return self._error(request, 400, "Bad Request: no XOR-PEER-ADDRESS", key=key)
        for ip, _ in peers:
            failure = self._peer_refused(request, allocation, ip, key)
            if failure is not None:
                return failure
        now = time.monotonic()
        for ip, _ in peers:
            allocation.permit(ip, now)
        return request.reply(Class.SUCCESS).encode(key)

    def _channel_bind(self, request: Message, allocation: Allocation, key: bytes) -> bytes:
        raw = request.get(Attr.CHANNEL_NUMBER)
        peer = request.xor_address(Attr.XOR_PEER_ADDRESS)
        if raw is None or len(raw) != 4 or peer is None:
            return self._error(request, 400, "Bad Request", key=key)
        channel = struct.unpack("!H", raw[:2])[0]
        if not CHANNEL_MIN <= channel <= CHANNEL_MAX:
            return self._error(request, 400, "Bad Request: channel number out of range", key=key)
        failure = self._peer_refused(request, allocation, peer[0], key)
        if failure is not None:
            return failure
        if not allocation.bind_channel(channel, peer, time.monotonic()):
            return self._error(request, 400, "Bad Request: channel or peer bound otherwise", key=key)
        return request.reply(Class.SUCCESS).encode(key)

    def _peer_refused(self, request: Message, allocation: Allocation, ip: str, key: bytes) -> bytes | None:
        address = ipaddress.ip_address(ip)
        if (address.version == 6) != (":" in allocation.relayed[0]):
            return self._error(request, 443, "Peer Address Family Mismatch", key=key)
        if any(address in network for network in self.denied):
            return self._error(request, 403, "Forbidden: that peer address is not relayed to", key=key)
        return None

    # -- data ---------------------------------------------------------------------------------------

    def _send_indication(self, message: Message, five_tuple: FiveTuple) -> None:
        allocation = self.allocations.get(five_tuple)
        peer = message.xor_address(Attr.XOR_PEER_ADDRESS)
        data = message.get(Attr.DATA)
        if allocation is None or peer is None or data is None:
            return
        if allocation.permitted(peer[0], time.monotonic()):
            self._relay(allocation, data, peer)

    def relay_channel_data(self, data: bytes, five_tuple: FiveTuple) -> None:
        allocation = self.allocations.get(five_tuple)
        if allocation is None:
            return
        try:
            channel, payload = parse_channel_data(data)
        except StunParseError:
            return
        bound = allocation.channels.get(channel)
        if bound is not None:
            self._relay(allocation, payload, bound[0])

    def _relay(self, allocation: Allocation, payload: bytes, peer: Address) -> None:
        allocation.relay.sendto(payload, peer)
        self.stats.relayed_packets += 1
        self.stats.relayed_bytes += len(payload)

    def _from_peer(self, allocation: Allocation, data: bytes, peer: Address) -> None:
        now = time.monotonic()
        if not allocation.permitted(peer[0], now):
            return  # RFC 8656 §10.3: no permission, no relaying
        channel = allocation.channel_of.get(peer)
        padded = allocation.five_tuple[0] != "udp"
        if channel is not None:
            allocation.send_to_client(channel_data(channel, data, pad=padded))
        else:
            indication = Message(Method.DATA, Class.INDICATION)
            indication.add_xor_address(Attr.XOR_PEER_ADDRESS, peer).add(Attr.DATA, data)
            allocation.send_to_client(indication.encode(fingerprint=False))
        self.stats.relayed_packets += 1
        self.stats.relayed_bytes += len(data)

    # -- answers ------------------------------------------------------------------------------------

    def _challenge(self, request: Message, code: int, reason: str) -> bytes:
        response = request.reply(Class.ERROR).add_error(code, reason)
        response.add_text(Attr.REALM, self.settings.realm).add(Attr.NONCE, self.credentials.nonce())
        return response.add_text(Attr.SOFTWARE, SOFTWARE).encode()

    def _error(self, request: Message, code: int, reason: str, *, key: bytes | None = None,
               extra: tuple[int, bytes] | None = None) -> bytes:
        response = request.reply(Class.ERROR).add_error(code, reason)
        if extra is not None:
            response.add(*extra)
        return response.add_text(Attr.SOFTWARE, SOFTWARE).encode(key)


class UdpListener:
    """The UDP listener: each datagram is one STUN message or one ChannelData message."""

    def __init__(self, server: TurnServer) -> None:
        self.server = server
        self.endpoint: UdpEndpoint | None = None

    def datagram_received(self, data: bytes, client: Address) -> None:
        endpoint = self.endpoint
        assert endpoint is not None
        five_tuple: FiveTuple = ("udp", client, endpoint.sockname)
        if is_channel_data(data):  # the hot path: no task for relayed media
            self.server.relay_channel_data(data, five_tuple)
            return

        def send(reply: bytes) -> None:
            endpoint.sendto(reply, client)

        asyncio.get_running_loop().create_task(self.server.handle(data, five_tuple, send))
