"""UDP sockets for media: read with the event loop's add_reader, draining every datagram that waits at each
wake-up, and sent to without a user-space queue.

asyncio's datagram transport reads one datagram per wake-up of the loop; relayed audio and video arrive
as many small datagrams, so that costs a loop iteration each and, when the process is briefly descheduled,
lets the kernel's receive buffer overflow. A datagram that finds the send buffer full is dropped, as UDP
may drop it anyway (media does not wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

Address = tuple[str, int]
BATCH = 256  # datagrams read per wake-up at most, so one busy socket cannot starve the others
MAX_DATAGRAM = 65_535
SOCKET_BUFFER = 4 << 20  # bytes asked for; the kernel caps it at net.core.rmem_max / wmem_max


class UdpEndpoint:
    """One bound UDP socket; `on_datagram(data, address)` is called for each datagram received."""

    def __init__(self, sock: socket.socket, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.sock = sock
        self.on_datagram = on_datagram
        self.sockname: Address = sock.getsockname()[:2]
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._read)
        self.closed = False

    @classmethod
    def bind(cls, host: str, port: int, on_datagram: Callable[[bytes, Address], None]) -> UdpEndpoint:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock, on_datagram)

    def _read(self) -> None:
        recvfrom, deliver = self.sock.recvfrom, self.on_datagram
        for _ in range(BATCH):
            try:
                data, address = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP errors reported on the socket: not the caller's problem
                log.debug("UDP %s: %s", self.sockname, exc)
                return
            try:
                deliver(data, (address[0], address[1]))
            except Exception:
                log.exception("UDP %s: a datagram handler failed", self.sockname)

    def sendto(self, data: bytes, address: Address) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError, OSError):
            self.sock.sendto(data, address)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
