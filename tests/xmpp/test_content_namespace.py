"""xmpp/content_namespace.py: the fast swap of jabber:client and jabber:server gives what `s2s.retag` gives,
byte for byte, for stanzas as they come from a stream parser or from Parlour's own code; the stanzas the
swap cannot handle (the namespace named elsewhere, declared again below, a prefixed root) take the slow path
and still come out right."""

from __future__ import annotations

import pytest
from lxml import etree

from appliance.xmpp import s2s
from appliance.xmpp.content_namespace import client_stanza, server_bytes
from appliance.xmpp.ns import NS_CLIENT, NS_SERVER
from appliance.xmpp.parser import Stanza, StreamParser

STANZAS = [
    "<message to='romeo@b.test/t' type='chat' id='m1'><body>hello &amp; &lt;bye&gt; é 💬</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<presence/>",
    "<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
    # the namespace's name in text and in an attribute value: the slow path
    "<message to='r@b.test' title='jabber:client'><body>xmlns=\"jabber:client\" jabber:server</body></message>",
    # a forwarded stanza that declares the content namespace again below the root (carbons, MAM)
    "<message to='r@b.test'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
    "<message xmlns='jabber:client' to='x@a.test'><body>inner</body></message></forwarded></sent></message>",
    "<message to='r@b.test' xml:lang='fr'><body xml:lang='en'>hi</body><x xmlns='jabber:x:oob'><url>u</url></x>"
    "</message>",
]


def parsed(stanza: str, namespace: str, *, prefix: str | None = None) -> etree._Element:
    """`stanza` as a stream parser hands it on, from a stream whose content namespace is `namespace`."""
    if prefix is None:
        header = f"<stream:stream xmlns='{namespace}' xmlns:stream='http://etherx.jabber.org/streams'>"
    else:
        header = f"<stream:stream xmlns:{prefix}='{namespace}' xmlns:stream='http://etherx.jabber.org/streams'>"
        stanza = stanza.replace("<message", f"<{prefix}:message").replace("</message", f"</{prefix}:message") \
            .replace("<body", f"<{prefix}:body").replace("</body", f"</{prefix}:body")
    events = StreamParser(max_stanza_size=65_536, max_depth=64).feed((header + stanza).encode())
    [element] = [e.element for e in events if isinstance(e, Stanza)]
    return element


@pytest.mark.parametrize("stanza", STANZAS)
def test_the_same_bytes_as_retag_both_ways(stanza: str) -> None:
    outgoing = parsed(stanza, NS_CLIENT)
    assert server_bytes(outgoing) == etree.tostring(s2s.retag(outgoing, NS_CLIENT, NS_SERVER))
    incoming = parsed(stanza, NS_SERVER)
    assert etree.tostring(client_stanza(incoming)) == etree.tostring(s2s.retag(incoming, NS_SERVER, NS_CLIENT))


def test_each_way_undoes_the_other() -> None:
    for stanza in STANZAS[:4] + STANZAS[5:]:  # retag moves a forwarded stanza's namespace too, both ways
        wire = server_bytes(parsed(stanza, NS_CLIENT))
        back = client_stanza(parsed(wire.decode(), NS_SERVER))
        assert etree.tostring(back) == etree.tostring(parsed(stanza, NS_CLIENT))


def test_stanzas_built_in_code_and_prefixed_roots() -> None:
    built = etree.Element(f"{{{NS_CLIENT}}}message", to="r@b.test")  # no default namespace: lxml says ns0:
    etree.SubElement(built, f"{{{NS_CLIENT}}}body").text = "x"
    prefixed = parsed("<message to='r@b.test'><body>x</body></message>", NS_CLIENT, prefix="c")
    for element in (built, prefixed):
        wire = server_bytes(element)
        assert wire == etree.tostring(s2s.retag(element, NS_CLIENT, NS_SERVER))
        assert wire == b'<message xmlns="jabber:server" to="r@b.test"><body>x</body></message>'
    incoming = parsed("<message to='r@b.test'><body>x</body></message>", NS_SERVER, prefix="s")
    copy = client_stanza(incoming)
    assert copy.tag == f"{{{NS_CLIENT}}}message" and copy[0].tag == f"{{{NS_CLIENT}}}body"
    assert etree.tostring(copy) == b'<message xmlns="jabber:client" to="r@b.test"><body>x</body></message>'


def test_the_copy_is_detached_and_the_original_unchanged() -> None:
    incoming = parsed(STANZAS[0], NS_SERVER)
    before = etree.tostring(incoming)
    copy = client_stanza(incoming)
    copy.set("from", "j@a.test")
    assert copy.getparent() is None and etree.tostring(incoming) == before
