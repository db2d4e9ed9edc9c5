"""The SOCKS5 side of XEP-0065's proxy: both parties connect with the same destination (SHA-1 of the stream
id and the two JIDs, RFC 1928 CONNECT with a domain-name address), wait, and are joined byte for byte once
the initiator activates the stream over XMPP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

SOCKS_VERSION = 5
NO_AUTH, NO_ACCEPTABLE = 0x00, 0xFF
CONNECT = 0x01
DOMAIN_NAME = 0x03
SUCCEEDED, GENERAL_FAILURE, NOT_ALLOWED, COMMAND_NOT_SUPPORTED, ADDRESS_NOT_SUPPORTED = 0x00, 0x01, 0x02, 0x07, 0x08
HANDSHAKE_TIMEOUT = 10.0
CHUNK = 64 * 1024


@dataclass(eq=False)
class Waiting:
    """A connection that asked for a destination and waits to be activated."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    since: float = field(default_factory=time.monotonic)
    joined: asyncio.Event = field(default_factory=asyncio.Event)


class Socks5Relay:
    """Listeners and the connections waiting per destination hash; `activate` joins a pair."""

    def __init__(self, *, pending_timeout: float, max_transfers: int) -> None:
        self.pending_timeout = pending_timeout
        self.max_transfers = max_transfers
        self.waiting: dict[str, list[Waiting]] = {}
        self.transfers: set[asyncio.Task[None]] = set()
        self.servers: list[asyncio.Server] = []
        self.port = 0
        self.bytes_relayed = 0

    async def listen(self, interfaces: Iterable[str], port: int) -> int:
        for interface in interfaces:
            server = await asyncio.start_server(self._accept, interface, port or self.port)
            self.servers.append(server)
            self.port = self.port or server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for waiting in [w for pair in self.waiting.values() for w in pair]:
            waiting.writer.close()
        self.waiting.clear()
        for task in list(self.transfers):
            task.cancel()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self.servers.clear()

    # -- SOCKS5 (RFC 1928), as XEP-0065 §5.3 restricts it -----------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            destination = await asyncio.wait_for(self._handshake(reader, writer), HANDSHAKE_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            log.debug("SOCKS5 handshake failed: %s", exc)
            writer.close()
            return
        if destination is None:
            writer.close()
            return
        waiting = Waiting(reader, writer)
        pair = self.waiting.setdefault(destination, [])
        if len(pair) >= 2 or len(self.transfers) >= self.max_transfers:
            writer.close()
            return
        pair.append(waiting)
        try:
            await asyncio.wait_for(waiting.joined.wait(), self.pending_timeout)
        except TimeoutError:  # never activated: give the slot back
            if waiting in self.waiting.get(destination, []):
                self.waiting[destination].remove(waiting)
                if not self.waiting[destination]:
                    del self.waiting[destination]
            writer.close()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str | None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if version != SOCKS_VERSION or NO_AUTH not in methods:
            writer.write(bytes([SOCKS_VERSION, NO_ACCEPTABLE]))
            return None
        writer.write(bytes([SOCKS_VERSION, NO_AUTH]))
        version, command, _, address_type = await reader.readexactly(4)
        if version != SOCKS_VERSION or command != CONNECT or address_type != DOMAIN_NAME:
            code = COMMAND_NOT_SUPPORTED if command != CONNECT else ADDRESS_NOT_SUPPORTED
            writer.write(bytes([SOCKS_VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]))
            return None
        (length,) = await reader.readexactly(1)
        address = await reader.readexactly(length)
        await reader.readexactly(2)  # DST.PORT: 0 in XEP-0065
        destination = address.decode("ascii", "replace").lower()
        if len(destination) != 40 or any(c not in "0123456789abcdef" for c in destination):
            writer.write(bytes([SOCKS_VERSION, NOT_ALLOWED, 0, DOMAIN_NAME, length, *address, 0, 0]))
            return None
        writer.write(bytes([SOCKS_VERSION, SUCCEEDED, 0, DOMAIN_NAME, length, *address, 0, 0]))
        await writer.drain()
        return destination

    # -- activation -------------------------------------------------------------------------------

    def activate(self, destination: str) -> bool:
        """Join the two connections that asked for `destination`; False if there are not two."""
        pair = self.waiting.get(destination, [])
        if len(pair) != 2:
            return False
        del self.waiting[destination]
        first, second = pair
        task = asyncio.get_running_loop().create_task(self._join(first, second), name="proxy65-transfer")
        self.transfers.add(task)
        task.add_done_callback(self.transfers.discard)
        return True

    async def _join(self, first: Waiting, second: Waiting) -> None:
        first.joined.set()
        second.joined.set()
        try:
            await asyncio.gather(self._pump(first, second), self._pump(second, first))
        finally:
            first.writer.close()
            second.writer.close()

    async def _pump(self, source: Waiting, sink: Waiting) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while chunk := await source.reader.read(CHUNK):
                sink.writer.write(chunk)
                self.bytes_relayed += len(chunk)
                await sink.writer.drain()
        with contextlib.suppress(OSError, RuntimeError):
            if sink.writer.can_write_eof():
                sink.writer.write_eof()  # the other side reads to the end of the file
