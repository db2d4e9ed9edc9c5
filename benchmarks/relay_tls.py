"""The bench floor (../shared/bench/ceiling/relay.py) with STARTTLS, for the TLS-on runs: the same relay,
plus <starttls/> in the first features and the TLS handshake. Everything else is the relay's own code.

    python benchmarks/relay_tls.py RELAY_DIR PORT DOMAIN CERT KEY
"""

from __future__ import annotations

import asyncio
import ssl
import sys

RELAY_DIR, PORT, DOMAIN, CERT, KEY = sys.argv[1:6]
sys.argv = [sys.argv[0], PORT, DOMAIN]  # relay.py reads its domain from argv[2]
sys.path.insert(0, RELAY_DIR)
import relay  # noqa: E402  (the shared floor, imported from where the campaign copied it)

STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
relay.FEAT1 = relay.FEAT1.replace(b"<stream:features>", b"<stream:features>" + STARTTLS, 1)
CONTEXT = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
CONTEXT.load_cert_chain(CERT, KEY)


class TlsRelay(relay.Relay):
    """The relay, answering <starttls/> with <proceed/> and a server-side TLS handshake."""

    def data_received(self, data: bytes) -> None:
        if b"<starttls" in data and not isinstance(self.tr.get_extra_info("ssl_object"), ssl.SSLObject):
            self.buf = b""
            self.tr.write(PROCEED)
            asyncio.get_running_loop().create_task(self._upgrade())
            return
        super().data_received(data)

    async def _upgrade(self) -> None:
        self.tr = await asyncio.get_running_loop().start_tls(self.tr, self, CONTEXT, server_side=True)


async def main() -> None:
    server = await asyncio.get_running_loop().create_server(TlsRelay, "127.0.0.1", int(PORT), backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
