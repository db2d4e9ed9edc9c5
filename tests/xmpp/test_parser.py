"""StreamParser: recorded client transcripts fed whole, in small chunks and one byte at a time."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree

from appliance.xmpp.errors import StreamError
from appliance.xmpp.ns import NS_CLIENT, NS_STREAM, NS_XML
from appliance.xmpp.parser import Event, Stanza, StreamClose, StreamOpen, StreamParser

HEADER = (
    b"<?xml version='1.0' encoding='UTF-8'?>"
    b"<stream:stream to='example.net' version='1.0' xml:lang='en'"
    b" xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)
CLOSE = b"</stream:stream>"

# Stanzas of a recorded session (after SASL), with the whitespace keepalives the client sent between them.
STANZAS: list[bytes] = [
    b"<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver=''/></iq>",
    b"<presence/>",  # no keepalive after it: the next stanza's '<' follows '/>' directly
    b"<message to='juliet@example.com' type='chat' id='m1' xml:lang='fr'>"
    b"<body>Caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x8e\x89 "
    b"&lt;b&gt; &amp; &quot;q&quot; &apos;a&apos; &#169;&#x1F600;</body>"
    b"<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>"
    b"<p style='font-weight:bold'>Hi <em>there</em>!</p></body></html>"
    b"<x:data xmlns:x='urn:example:x' x:kind='v'><x:item>1</x:item></x:data>"
    b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    b"<message id='m2'><body><![CDATA[<not a tag> & ]]>\xe2\x82\xac</body></message>",
    b"<presence><show>away</show><status>Out &amp; about</status>"
    b"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://ex.org' ver='x='/></presence>",
]
KEEPALIVES = [b"\n", b"", b" \t ", b"\r\n  "]


def transcript(header: bytes = HEADER, close: bytes = CLOSE) -> bytes:
    body = b"".join(stanza + KEEPALIVES[i % len(KEEPALIVES)] for i, stanza in enumerate(STANZAS))
    return header + b" " + body + close


def whole(parser: StreamParser, data: bytes) -> list[Event]:
    return parser.feed(data)


def bytewise(parser: StreamParser, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    return events


def chunks_of_7(parser: StreamParser, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(0, len(data), 7):
        events += parser.feed(data[i : i + 7])
    return events


def header_then_rest(parser: StreamParser, data: bytes) -> list[Event]:
    """The stream header in one read, then all the rest in one (where it is one stanza, the whole-stanza
    path parses it)."""
    start = data.find(b"<stream")
    end = data.find(b">", start) + 1 if start >= 0 else 0
    if not end:
        return parser.feed(data)
    return parser.feed(data[:end]) + parser.feed(data[end:])


def stanza_reads(parser: StreamParser, data: bytes) -> list[Event]:
    """The header, then each recorded stanza and keepalive in a read of its own, as a client sends them."""
    cut = data.index(STANZAS[0])
    events = parser.feed(data[:cut])
    pos = cut
    for i, stanza in enumerate(STANZAS):
        assert data.startswith(stanza, pos)
        events += parser.feed(stanza)
        keepalive = KEEPALIVES[i % len(KEEPALIVES)]
        events += parser.feed(keepalive)
        pos += len(stanza) + len(keepalive)
    return events + parser.feed(data[pos:])


Feeder = Callable[[StreamParser, bytes], list[Event]]
FEEDERS = pytest.mark.parametrize(
    "feed", [whole, bytewise, chunks_of_7, header_then_rest], ids=["whole", "bytewise", "chunks7", "header-rest"]
)
TRANSCRIPT_FEEDERS = pytest.mark.parametrize(
    "feed", [whole, bytewise, chunks_of_7, header_then_rest, stanza_reads],
    ids=["whole", "bytewise", "chunks7", "header-rest", "stanza-reads"],
)


def canon(element: etree._Element) -> tuple[object, ...]:
    """Namespace-aware, prefix-independent shape of an element (tag, attributes, text, children, tails)."""
    return (
        element.tag,
        sorted(element.attrib.items()),
        element.text or "",
        [(canon(child), child.tail or "") for child in element],
    )


def expected_stanzas(header: bytes = HEADER) -> list[etree._Element]:
    """The stanzas as a conforming XML parser sees them inside the stream (the reference)."""
    doc = etree.fromstring(header.split(b"?>", 1)[-1] + b"".join(STANZAS) + CLOSE)
    return list(doc)


def summary(events: list[Event]) -> list[object]:
    """Events in a comparable form: stanzas by their canonical shape."""
    out: list[object] = []
    for event in events:
        out.append(canon(event.element) if isinstance(event, Stanza) else event)
    return out


def feed_error(feed: Feeder, data: bytes, **limits: int) -> StreamError:
    parser = StreamParser(**limits)
    with pytest.raises(StreamError) as info:
        feed(parser, data)
    return info.value


# -- a whole session -----------------------------------------------------------------------------


@TRANSCRIPT_FEEDERS
def test_recorded_session_yields_header_stanzas_and_close(feed: Feeder) -> None:
    events = feed(StreamParser(), transcript())

    assert events[0] == StreamOpen(
        f"{{{NS_STREAM}}}stream",
        {"to": "example.net", "version": "1.0", f"{{{NS_XML}}}lang": "en"},
        {None: NS_CLIENT, "stream": NS_STREAM},
    )
    assert events[0].default_namespace == NS_CLIENT
    assert events[-1] == StreamClose()
    assert all(isinstance(e, Stanza) for e in events[1:-1])
    assert summary(events[1:-1]) == [canon(e) for e in expected_stanzas()]


@TRANSCRIPT_FEEDERS
def test_stanza_serializations_are_exact(feed: Feeder) -> None:
    events = feed(StreamParser(), transcript())
    serialized = [etree.tostring(e.element) for e in events if isinstance(e, Stanza)]

    assert serialized[0] == (
        b'<iq xmlns="jabber:client" type="get" id="r1"><query xmlns="jabber:iq:roster" ver=""/></iq>'
    )
    assert serialized[1] == b'<presence xmlns="jabber:client"/>'
    message = etree.fromstring(serialized[2])
    assert message.findtext(f"{{{NS_CLIENT}}}body") == "Café ☕ 🎉 <b> & \"q\" 'a' ©😀"
    assert message.get(f"{{{NS_XML}}}lang") == "fr"
    paragraph = message.find(".//{http://www.w3.org/1999/xhtml}p")
    assert paragraph is not None and paragraph.text == "Hi " and paragraph[0].tail == "!"
    item = message.find("{urn:example:x}data/{urn:example:x}item")
    assert item is not None and item.text == "1"
    assert message.find("{urn:example:x}data").get("{urn:example:x}kind") == "v"  # type: ignore[union-attr]
    assert serialized[3] == (
        b'<message xmlns="jabber:client" id="m2"><body>&lt;not a tag&gt; &amp; &#8364;</body></message>'
    )
    assert serialized[4] == (
        b'<presence xmlns="jabber:client"><show>away</show><status>Out &amp; about</status>'
        b'<c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="https://ex.org" ver="x="/></presence>'
    )


def test_nested_namespaces_declare_each_change_once_and_stanzas_share_nothing() -> None:
    # Elements are copies of one template per name: a copy keeps no declaration its parent already
    # makes, and changing one parsed stanza leaves the next of the same shape untouched.
    parser = StreamParser()
    parser.feed(HEADER)
    data = (
        b"<message id='a'><body>x</body><x xmlns='urn:x'><item xmlns='jabber:client'><body/></item></x>"
        b"</message>"
    )
    first, second = (e.element for e in parser.feed(data + data) if isinstance(e, Stanza))
    first.set("id", "changed")
    first[0].text = "changed"
    assert etree.tostring(second) == (
        b'<message xmlns="jabber:client" id="a"><body>x</body><x xmlns="urn:x"><item xmlns="jabber:client">'
        b'<body/></item></x></message>'
    )


@TRANSCRIPT_FEEDERS
def test_stanzas_are_detached_from_the_stream_root(feed: Feeder) -> None:
    events = feed(StreamParser(), transcript())
    for event in events:
        if isinstance(event, Stanza):
            assert event.element.getparent() is None


def test_multibyte_character_split_between_every_pair_of_chunks() -> None:
    data = HEADER + "<message><body>é€😀</body></message>".encode()
    for cut in range(len(HEADER), len(data)):
        parser = StreamParser()
        events = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert [etree.tostring(e.element) for e in events if isinstance(e, Stanza)] == [
            b'<message xmlns="jabber:client"><body>&#233;&#8364;&#128512;</body></message>'
        ], cut


def test_whitespace_keepalives_produce_no_events() -> None:
    parser = StreamParser()
    assert len(parser.feed(HEADER)) == 1
    for keepalive in (b" ", b"\n", b"\r\n\t  ", b" " * 5000):
        assert parser.feed(keepalive) == []


def test_stream_prefix_and_default_namespace_variants() -> None:
    prefixed = transcript(
        b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' version='1.0'>",
        b"</s:stream>",
    )
    events = StreamParser().feed(prefixed)
    assert isinstance(events[0], StreamOpen) and events[0].namespaces == {None: NS_CLIENT, "s": NS_STREAM}
    assert summary(events[1:-1]) == [canon(e) for e in expected_stanzas()]
    assert events[-1] == StreamClose()


# -- errors --------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
    b"<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    b"<message><body>&lol3;</body></message>"
)
NO_DECL = HEADER.split(b"?>", 1)[1]

ERRORS = [
    ("dtd", b"<?xml version='1.0'?><!DOCTYPE stream:stream SYSTEM 'x.dtd'>" + NO_DECL, "restricted-xml"),
    (
        "internal-entity",
        b"<!DOCTYPE s [<!ENTITY e 'x'>]>" + NO_DECL + b"<message>&e;</message>",
        "restricted-xml",
    ),
    ("billion-laughs", BILLION_LAUGHS, "restricted-xml"),
    ("comment-before-header", b"<!-- hi -->" + NO_DECL, "restricted-xml"),
    ("comment-between-stanzas", HEADER + b"<presence/><!-- hi -->", "restricted-xml"),
    ("comment-in-stanza", HEADER + b"<message><!-- hi --></message>", "restricted-xml"),
    ("processing-instruction", HEADER + b"<message><?evil x?></message>", "restricted-xml"),
    ("pi-between-stanzas", HEADER + b"<?evil x?>", "restricted-xml"),
    ("undefined-entity", HEADER + b"<message><body>&nbsp;</body></message>", "restricted-xml"),
    ("unbound-element-prefix", HEADER + b"<message><foo:bar/></message>", "bad-namespace-prefix"),
    ("unbound-attribute-prefix", HEADER + b"<message foo:id='1'/>", "bad-namespace-prefix"),
    ("unbound-stream-prefix", b"<stream:stream xmlns='jabber:client'>", "bad-namespace-prefix"),
    ("mismatched-tags", HEADER + b"<message><body></message></body>", "not-well-formed"),
    ("garbage", b"GET / HTTP/1.1\r\nHost: example.net\r\n\r\n", "not-well-formed"),
    ("garbage-after-header", HEADER + b"<<<>>>", "not-well-formed"),
    ("bad-char-reference", HEADER + b"<message><body>&#0;</body></message>", "not-well-formed"),
    ("invalid-utf8", HEADER + b"<message><body>\xff\xfe</body></message>", "not-well-formed"),
    ("truncated-utf8", HEADER + b"<message><body>\xc3(</body></message>", "not-well-formed"),
    ("surrogate-utf8", HEADER + b"<message><body>\xed\xa0\x80</body></message>", "not-well-formed"),
    ("after-close", HEADER + CLOSE + b"<presence/>", "not-well-formed"),
    (
        "declared-latin1",
        b"<?xml version='1.0' encoding='ISO-8859-1'?>" + NO_DECL,
        "unsupported-encoding",
    ),
    ("declared-utf16", b"<?xml version='1.0' encoding='UTF-16'?>" + NO_DECL, "unsupported-encoding"),
    ("wrong-root-name", b"<stream:foo xmlns:stream='http://etherx.jabber.org/streams'>", "invalid-namespace"),
    (
        "wrong-stream-namespace",
        b"<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:client'>",
        "invalid-namespace",
    ),
    ("no-stream-namespace", b"<stream xmlns='jabber:client'>", "invalid-namespace"),
    ("html-root", b"<html><body>", "invalid-namespace"),
    ("text-between-stanzas", HEADER + b"<presence/>hello", "bad-format"),
    ("text-after-header", HEADER + b"  x  ", "bad-format"),
]


@FEEDERS
@pytest.mark.parametrize(("data", "condition"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_input_raises_the_rfc_condition(feed: Feeder, data: bytes, condition: str) -> None:
    assert feed_error(feed, data).condition == condition


def test_valid_prefix_of_an_error_case_still_parses() -> None:
    """The error tests fail on the bad part, not earlier: the same input without it is fine."""
    events = StreamParser().feed(HEADER + b"<presence/>")
    assert [type(e) for e in events] == [StreamOpen, Stanza]


# -- limits --------------------------------------------------------------------------------------

LIMIT = 1024


@FEEDERS
def test_one_huge_text_node_is_a_policy_violation(feed: Feeder) -> None:
    data = HEADER + b"<message><body>" + b"x" * (2 * LIMIT) + b"</body></message>"
    assert feed_error(feed, data, max_stanza_size=LIMIT).condition == "policy-violation"


@FEEDERS
def test_many_small_children_are_a_policy_violation(feed: Feeder) -> None:
    data = HEADER + b"<message>" + b"<a/>" * (LIMIT // 2) + b"</message>"
    assert feed_error(feed, data, max_stanza_size=LIMIT).condition == "policy-violation"


@FEEDERS
def test_an_unfinished_huge_text_node_is_refused_before_it_ends(feed: Feeder) -> None:
    data = HEADER + b"<message><body>" + b"x" * (2 * LIMIT)
    assert feed_error(feed, data, max_stanza_size=LIMIT).condition == "policy-violation"


@FEEDERS
@pytest.mark.parametrize(
    "data",
    [
        HEADER + b"<message to='" + b"x" * (2 * LIMIT),
        HEADER + b"<message " + b" " * (2 * LIMIT),
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='" + b"x" * (2 * LIMIT),
    ],
    ids=["stanza-attribute", "stanza-whitespace", "header"],
)
def test_a_start_tag_that_never_ends_is_refused(feed: Feeder, data: bytes) -> None:
    """Expat buffers a half-received tag internally, so an endless tag must hit the size limit too."""
    assert feed_error(feed, data, max_stanza_size=LIMIT).condition == "policy-violation"


@FEEDERS
def test_stanzas_under_the_limit_pass_however_many(feed: Feeder) -> None:
    stanza = b"<message><body>" + b"y" * (LIMIT - 100) + b"</body></message>"
    parser = StreamParser(max_stanza_size=LIMIT)
    events = feed(parser, HEADER + (stanza + b"\n") * 10)
    assert [type(e) for e in events] == [StreamOpen] + [Stanza] * 10
    assert events[1].element.findtext(f"{{{NS_CLIENT}}}body") == "y" * (LIMIT - 100)  # type: ignore[union-attr]


@FEEDERS
def test_depth_over_max_depth_is_a_policy_violation(feed: Feeder) -> None:
    # Depth counts the stream root: stream(1) > message(2) > a(3) > b(4).
    ok = HEADER + b"<message><a><b/></a></message>"
    events = feed(StreamParser(max_depth=4), ok)
    assert [type(e) for e in events] == [StreamOpen, Stanza]
    too_deep = HEADER + b"<message><a><b><c/></b></a></message>"
    assert feed_error(feed, too_deep, max_depth=4).condition == "policy-violation"


@FEEDERS
def test_default_depth_limit_stops_a_deeply_nested_stanza(feed: Feeder) -> None:
    data = HEADER + b"<message>" + b"<a>" * 200
    assert feed_error(feed, data).condition == "policy-violation"


# -- hibernation ---------------------------------------------------------------------------------


def gaps(header: bytes, close: bytes) -> set[int]:
    """Offsets (bytes fed so far) at which no tag or stanza is open: where hibernation is allowed."""
    allowed: set[int] = set()
    pos = len(header)
    allowed.add(pos)
    pos += 1
    allowed.add(pos)  # the space after the header
    for i, stanza in enumerate(STANZAS):
        pos += len(stanza)
        keepalive = KEEPALIVES[i % len(KEEPALIVES)]
        allowed.update(range(pos, pos + len(keepalive) + 1))
        pos += len(keepalive)
    assert pos + len(close) == len(transcript(header, close))
    return allowed


HEADERS = pytest.mark.parametrize(
    ("header", "close"),
    [
        (HEADER, CLOSE),
        (
            b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' version='1.0'>",
            b"</s:stream>",
        ),
        (
            b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'"
            b" xmlns:db='jabber:server:dialback' version='1.0'>",
            CLOSE,
        ),
    ],
    ids=["stream-prefix", "s-prefix", "extra-namespace"],
)


@HEADERS
def test_hibernating_at_every_byte_changes_nothing(header: bytes, close: bytes) -> None:
    data = transcript(header, close)
    reference = summary(StreamParser().feed(data))
    allowed = gaps(header, close)
    parser = StreamParser()
    events: list[Event] = []
    hibernated_at: set[int] = set()
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
        if parser.hibernate():
            hibernated_at.add(i + 1)
    assert summary(events) == reference
    assert hibernated_at == allowed - {len(data)}


@HEADERS
def test_hibernate_once_then_feed_the_rest_whole(header: bytes, close: bytes) -> None:
    data = transcript(header, close)
    reference = summary(StreamParser().feed(data))
    for cut in sorted(gaps(header, close)):
        parser = StreamParser()
        events = parser.feed(data[:cut])
        assert parser.hibernate(), cut
        assert not parser.can_hibernate  # nothing left to drop
        events += parser.feed(data[cut:])
        assert summary(events) == reference, cut


def test_after_hibernation_a_stanza_split_mid_tag_parses() -> None:
    parser = StreamParser()
    parser.feed(HEADER + b"<presence/>")
    assert parser.hibernate()
    assert parser.feed(b"<mes") == []
    assert not parser.can_hibernate
    assert not parser.hibernate()
    assert parser.feed(b"sage to='a@b.c'><bo") == []
    assert not parser.hibernate()
    events = parser.feed(b"dy>hi</body></mess") + parser.feed(b"age>")
    assert [etree.tostring(e.element) for e in events if isinstance(e, Stanza)] == [
        b'<message xmlns="jabber:client" to="a@b.c"><body>hi</body></message>'
    ]
    assert parser.hibernate()
    assert parser.feed(CLOSE) == [StreamClose()]


def test_after_hibernation_errors_are_still_detected() -> None:
    parser = StreamParser(max_stanza_size=LIMIT)
    parser.feed(HEADER)
    assert parser.hibernate()
    with pytest.raises(StreamError) as info:
        parser.feed(b"<message><foo:bar/></message>")
    assert info.value.condition == "bad-namespace-prefix"

    parser = StreamParser(max_stanza_size=LIMIT)
    parser.feed(HEADER + b"<presence/>" * 50)
    assert parser.hibernate()
    with pytest.raises(StreamError) as info:
        parser.feed(b"<message>" + b"<a/>" * LIMIT)
    assert info.value.condition == "policy-violation"


def test_no_hibernation_before_the_header_or_after_the_close() -> None:
    parser = StreamParser()
    assert not parser.hibernate()
    parser.feed(HEADER[:20])
    assert not parser.can_hibernate
    parser.feed(HEADER[20:])
    assert parser.can_hibernate
    parser.feed(b"<message><body>half")
    assert not parser.hibernate()
    parser.feed(b"</body></message>" + CLOSE)
    assert not parser.hibernate()


# -- a read that is one whole stanza ------------------------------------------------------------

WHOLE_READS = [
    b"<message to='juliet@example.com' type='chat' id='m1'><body>hello</body></message>",
    b"<presence/>",
    b"<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver=''/></iq>",
    b"<message id='x' xml:lang='fr'><body>&lt;&#169;&amp;</body><x xmlns=''><y a='1'/></x></message>\n",
    b"<message><a:b xmlns:a='urn:a' a:c='d'/><e xmlns='urn:e'><message xmlns='jabber:client'/></e></message>",
    b"<message xmlns='jabber:client' id='own-declaration'/>",  # left to expat: declares its namespace itself
    b"  <presence/>",  # leading whitespace: left to expat
    b"<presence/><presence id='2'/>",  # two stanzas: left to expat
    b"<message><body><![CDATA[<x> & y]]></body></message>",  # CDATA: left to expat
]


@pytest.mark.parametrize("data", WHOLE_READS)
def test_a_whole_stanza_read_parses_as_expat_parses_it(data: bytes) -> None:
    """Whatever path a read takes, its stanzas are the same, serialized byte for byte."""
    expat_events = bytewise(StreamParser(), HEADER + data)[1:]
    parser = StreamParser()
    parser.feed(HEADER)
    events = parser.feed(data)
    assert [etree.tostring(e.element) for e in events] == [etree.tostring(e.element) for e in expat_events]
    assert [e.element.nsmap for e in events] == [e.element.nsmap for e in expat_events]  # type: ignore[union-attr]
    assert parser.can_hibernate  # nothing left half-parsed
    assert parser.feed(b"<message><body>next</bo") == []  # the stream goes on where the read ended
    assert len(parser.feed(b"dy></message>" + CLOSE)) == 2


def test_a_whole_stanza_read_needs_no_expat_parser() -> None:
    """A hibernated stream stays without its expat parser while its reads are whole simple stanzas, and a
    later split stanza still parses at the right offsets."""
    parser = StreamParser()
    parser.feed(HEADER)
    assert parser.hibernate()
    for i in range(3):
        (event,) = parser.feed(f"<message id='m{i}'><body>hi</body></message>".encode())
        assert isinstance(event, Stanza) and event.element.get("id") == f"m{i}"
        assert parser._parser is None  # the whole-stanza path does not wake expat
    assert parser.feed(b"<message id='split'><bo") == []
    assert not parser.can_hibernate
    (event,) = parser.feed(b"dy>x</body></message>")
    assert etree.tostring(event.element) == b'<message xmlns="jabber:client" id="split"><body>x</body></message>'
    assert parser.hibernate()


@pytest.mark.parametrize(
    ("data", "condition"),
    [
        (b"<message><!-- hidden --></message>", "restricted-xml"),
        (b"<message><?pi x?></message>", "restricted-xml"),
        (b"<message><body>&custom;</body></message>", "restricted-xml"),
        (b"<message><a:b/></message>", "bad-namespace-prefix"),
        (b"<message><body>\xff</body></message>", "not-well-formed"),
        (b"<message><body>&#0;</body></message>", "not-well-formed"),
        (b"<message><body></message>", "not-well-formed"),
        (b"<message>" + b"<a>" * 70 + b"</a>" * 70 + b"</message>", "policy-violation"),
    ],
    ids=["comment", "pi", "entity", "unbound-prefix", "bad-utf8", "bad-char-ref", "mismatched", "too-deep"],
)
def test_a_bad_single_stanza_read_gets_the_same_error(data: bytes, condition: str) -> None:
    parser = StreamParser()
    parser.feed(HEADER)
    with pytest.raises(StreamError) as info:
        parser.feed(data)
    assert info.value.condition == condition


def test_a_single_stanza_read_over_the_size_limit_is_refused() -> None:
    parser = StreamParser(max_stanza_size=100)
    parser.feed(HEADER)
    parser.feed(b"<message><body>" + b"x" * 60 + b"</body></message>")  # 92 bytes: fine
    with pytest.raises(StreamError) as info:
        parser.feed(b"<message><body>" + b"x" * 200 + b"</body></message>")
    assert info.value.condition == "policy-violation"


# -- reset ---------------------------------------------------------------------------------------


@FEEDERS
def test_reset_restarts_cleanly_mid_stanza(feed: Feeder) -> None:
    reference = summary(StreamParser().feed(transcript()))
    parser = StreamParser()
    parser.feed(HEADER + b"<message><body>half a sta")
    parser.reset()
    assert summary(feed(parser, transcript())) == reference


def test_reset_after_hibernation_expects_a_new_header() -> None:
    parser = StreamParser()
    parser.feed(HEADER + b"<presence/>")
    assert parser.hibernate()
    parser.reset()
    with pytest.raises(StreamError) as info:
        parser.feed(b"<presence/>")
    assert info.value.condition == "invalid-namespace"
    parser.reset()
    events = parser.feed(HEADER)
    assert isinstance(events[0], StreamOpen) and events[0].attrs["to"] == "example.net"


def test_reset_allows_a_new_xml_declaration() -> None:
    """After STARTTLS and SASL the client starts over, XML declaration included."""
    parser = StreamParser()
    parser.feed(HEADER + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    parser.reset()
    events = parser.feed(HEADER + b"<presence/>")
    assert [type(e) for e in events] == [StreamOpen, Stanza]
