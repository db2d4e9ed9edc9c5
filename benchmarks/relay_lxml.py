"""The bench floor (../shared/bench/ceiling/relay.py) plus the least XML work a real server does per message:
each <message/> is parsed into a tree by lxml (libxml2), stamped with its sender's full JID and serialized
again before it is written. Logins, lookups and writes are the relay's own code. What this costs above the
bare relay is the floor of any server that parses its stanzas with lxml (Parlour's parser, for a read that
is one whole stanza, makes exactly this call: appliance/xmpp/parser.py, `_whole_stanza`).

    python benchmarks/relay_lxml.py RELAY_DIR PORT DOMAIN   (with Parlour importable: the project's venv)
"""

from __future__ import annotations

import asyncio
import sys

from lxml import etree

from appliance.xmpp.parser import _WHOLE_PARSER as PARSER  # the very parser Parlour uses for such a read

RELAY_DIR, PORT, DOMAIN = sys.argv[1:4]
sys.argv = [sys.argv[0], PORT, DOMAIN]  # relay.py reads its domain from argv[2]
sys.path.insert(0, RELAY_DIR)
import relay  # noqa: E402  (the shared floor, imported from where the campaign copied it)

DEFAULT_NAMESPACE = b" xmlns='jabber:client'"


class LxmlRelay(relay.Relay):
    """The relay, with each message parsed, stamped and serialized by lxml on its way through."""

    def stanza(self, head: bytes, s: bytes) -> None:
        if head != b"<message" or self.user is None:
            super().stanza(head, s)
            return
        element = etree.fromstring(head + DEFAULT_NAMESPACE + s[len(head):], PARSER)
        element.set("from", f"{self.user.decode()}@{relay.DOMAIN}/r")
        to = element.get("to", "")
        destination = relay.online.get(to.partition("@")[0].encode())
        if destination is not None:
            destination.write(etree.tostring(element))


if __name__ == "__main__":
    relay.Relay = LxmlRelay  # type: ignore[misc]  # relay.main serves whatever relay.Relay is
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(relay.main(int(PORT)))
