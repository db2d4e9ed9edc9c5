"""A tiny authoritative DNS server on loopback UDP for tests: answers from a zone dict, built by dnspython.

`zone` maps (name, type) to a list of rdata texts, e.g. ("_xmpp-server._tcp.a.test.", "SRV"):
["10 60 5269 xmpp1.a.test."]. Unknown names get NXDOMAIN; `silent` names are never answered (a stalled
resolver, for timeouts). Every question asked is recorded in `asked`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server.answer(dns.message.from_wire(data))
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply.to_wire(), addr)


class DnsServer:
    """Serve `zone` on host:port (default 127.0.0.1:<ephemeral>); use as `async with DnsServer(zone) as server`."""

    def __init__(self, zone: dict[tuple[str, str], list[str]], *, silent: Iterable[str] = (),
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.zone = zone
        self.silent = set(silent)
        self.asked: list[tuple[str, str]] = []
        self.host = host
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name, rdtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
        self.asked.append((name, rdtype))
        if name in self.silent:
            return None
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        texts = self.zone.get((name, rdtype))
        if texts:
            reply.answer.append(dns.rrset.from_text_list(name, 60, dns.rdataclass.IN, rdtype, texts))
        elif not any(n == name for n, _ in self.zone):
            reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply

    async def __aenter__(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=(self.host, self.port))
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

