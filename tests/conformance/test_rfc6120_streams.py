"""RFC 6120 §4: stream headers, stream errors, features, closing, whitespace keepalives."""

from __future__ import annotations

from tests.conformance.client import NS, XmppStream, connect, q, raw_open
from tests.conformance.conftest import ServerInfo, xfail_on

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


async def _error_after_header(server: ServerInfo, header: str) -> tuple[XmppStream, str]:
    """Send `header`; return the stream and the stream error condition the server answered with.

    §4.9.1.2: "If the error is triggered by the initial stream header, the receiving entity MUST still
    send the opening <stream> tag, include the <error/> element as a child of the stream element, and
    send the closing </stream> tag (preferably all at the same time)."
    """
    s = await raw_open(server, header, features=False)
    await s.wait_header()
    err = await s.expect_stream_error()
    await s.wait_closed()
    conds = [e.tag.split("}")[1] for e in err if e.tag.startswith(f"{{{NS['streams']}}}")]
    return s, conds[0]


async def test_response_header_from_id_version_lang(server: ServerInfo) -> None:
    # §4.7.1: the receiving entity MUST include 'from' with its domain; §4.7.3: it MUST include an
    # 'id' (unique: two streams get different ids); §4.7.5: version is the lower of the two, 1.0;
    # §4.7.4: "the receiving entity MUST include the 'xml:lang' attribute" in the response header.
    first = await raw_open(server)
    second = await raw_open(server)
    try:
        for s in (first, second):
            header = s.header
            assert header is not None and header.tag == q("stream:stream")
            assert header.get("from") == server.domain
            assert header.get("id")
            assert header.get("version") == "1.0"
            assert header.get(XML_LANG)
        assert first.header.get("id") != second.header.get("id")  # type: ignore[union-attr]
    finally:
        await first.close()
        await second.close()


async def test_response_header_to_is_initial_from(server: ServerInfo) -> None:
    # §4.7.2: "the receiving entity ... SHOULD include the 'to' attribute in the response stream header
    # and set its value to the 'from' of the initial stream header" (when the initiating entity gave one).
    s = await raw_open(server, from_=server.jid("alice"))
    try:
        assert s.header is not None and s.header.get("to") == server.jid("alice")
    finally:
        await s.close()


async def test_higher_minor_version_answered_with_1_0(server: ServerInfo) -> None:
    # §4.7.5: the receiving entity MUST set 'version' to the value supplied by the initiating entity or
    # the highest version it supports, whichever is lower: 1.1 -> 1.0, and the stream goes on.
    s = await raw_open(server, version="1.1")
    try:
        assert s.header is not None and s.header.get("version") == "1.0"
        assert s.features is not None and s.features.find(q("sasl:mechanisms")) is not None
    finally:
        await s.close()


async def test_higher_major_version(server: ServerInfo) -> None:
    # §4.7.5: the response carries the lower of the two versions (1.0); the server may go on (the client
    # then "SHOULD generate an <unsupported-version/> stream error") or refuse itself with §4.9.3.25
    # unsupported-version. Either way the response header says 1.0.
    s = await raw_open(server, version="2.0", features=False)
    try:
        await s.wait_header()
        assert s.header is not None and s.header.get("version") == "1.0"
        first = await s.expect(lambda e: e.tag in (q("stream:error"), q("stream:features")))
        if first.tag == q("stream:error"):
            assert first.find(f"{{{NS['streams']}}}unsupported-version") is not None
    finally:
        await s.abort()


async def test_missing_version_is_not_answered_as_1_0(server: ServerInfo) -> None:
    # §4.7.5: "If either entity receives a stream header with no 'version' attribute, the entity MUST
    # consider the version supported by the other entity to be "0.9" and SHOULD NOT include a 'version'
    # attribute in the response stream header." (Refusing pre-1.0 streams afterwards is allowed.)
    s = await raw_open(server, version=None, features=False)
    try:
        header = await s.wait_header()
        assert header.get("version") is None
    finally:
        await s.abort()


@xfail_on("prosody", reason="RFC 6120 §4.7.5: Prosody 0.12 answers version='0.9' with version='1.0'")
async def test_lower_version_is_answered_with_that_version(server: ServerInfo) -> None:
    # §4.7.5: the receiving entity "MUST set the value of the 'version' attribute in the response stream
    # header to either the value supplied by the initiating entity or the highest version number supported
    # by the receiving entity, whichever is lower" (it may then refuse the old version).
    s = await raw_open(server, version="0.9", features=False)
    try:
        header = await s.wait_header()
        assert header.get("version") == "0.9"
    finally:
        await s.abort()


async def test_unknown_to_is_host_unknown(server: ServerInfo) -> None:
    # §4.9.3.6 host-unknown: "The value of the 'to' attribute provided in the initial stream header does
    # not correspond to an FQDN that is serviced by the receiving entity."
    s = await raw_open(server, to="no-such-host.example", features=False)
    try:
        await s.wait_header()
        await s.expect_stream_error("host-unknown")
        await s.wait_closed()
    finally:
        await s.abort()


async def test_missing_to_is_a_stream_error(server: ServerInfo) -> None:
    # §4.7.2: "For initial stream headers in both client-to-server and server-to-server communication,
    # the initiating entity MUST include the 'to' attribute". The RFC names no condition for a missing
    # one: host-unknown (§4.9.3.6: no serviced FQDN) or improper-addressing (§4.9.3.7: "the 'to' attribute
    # has no value") are both readings of the text; the stream must not go on.
    s, condition = await _error_after_header(
        server, f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='{NS['stream']}' "
                "version='1.0'>")
    assert condition in ("host-unknown", "improper-addressing")
    assert s.features is None


async def test_wrong_stream_namespace(server: ServerInfo) -> None:
    # §4.8.1 / §4.9.3.10 invalid-namespace: the stream namespace is other than
    # "http://etherx.jabber.org/streams".
    s = await raw_open(server, stream_ns="http://example.com/not-streams", features=False)
    try:
        await s.wait_closed()
        # the server cannot say <stream:error/> in a namespace the client did not declare correctly;
        # what it sends must at least carry invalid-namespace, and no features
        errors = [e for e in s.received if e.tag.endswith("}error") or e.tag == "error"]
        assert s.features is None
        assert any(c.tag == f"{{{NS['streams']}}}invalid-namespace" for e in errors for c in e), \
            [e.tag for e in s.received]
    finally:
        await s.abort()


@xfail_on("ejabberd", reason="RFC 6120 §4.9.3.10: ejabberd 23.01 answers a wrong content namespace with "
                             "invalid-xml instead of invalid-namespace")
@xfail_on("prosody", reason="RFC 6120 §4.9.3.10: Prosody 0.12 accepts a stream whose default namespace is not "
                            "jabber:client and sends features")
async def test_wrong_content_namespace(server: ServerInfo) -> None:
    # §4.8.2 / §4.9.3.10 invalid-namespace: "the content namespace declared as the default namespace is
    # not supported" (a client-to-server stream is jabber:client).
    _s, condition = await _error_after_header(
        server, f"<?xml version='1.0'?><stream:stream xmlns='urn:example:wrong' xmlns:stream='{NS['stream']}' "
                f"to='{server.domain}' version='1.0'>")
    assert condition == "invalid-namespace"


async def test_features_before_authentication(server: ServerInfo) -> None:
    # §6.4.1: SASL mechanisms are offered; §7.2: "the receiving entity MUST NOT offer the resource binding
    # feature before the client has authenticated".
    s = await raw_open(server)
    try:
        assert s.features is not None
        mechanisms = [m.text for m in s.features.iter(q("sasl:mechanism"))]
        assert "PLAIN" in mechanisms
        assert s.features.find(q("bind:bind")) is None
    finally:
        await s.close()


async def test_features_after_authentication(server: ServerInfo) -> None:
    # §6.4.6: after SASL success and the stream restart the server sends new features, which MUST NOT
    # include SASL again; §7.2: they include resource binding.
    s = await raw_open(server)
    try:
        features = await s.login("alice", server.password)
        assert s.header is not None and s.header.get("id")
        assert features.find(q("bind:bind")) is not None
        assert features.find(q("sasl:mechanisms")) is None
    finally:
        await s.close()


async def test_stream_id_changes_on_restart(server: ServerInfo) -> None:
    # §4.3.3: after a restart the receiving entity "MUST send a new stream header ... with a new stream ID".
    s = await raw_open(server)
    try:
        before = s.header.get("id")  # type: ignore[union-attr]
        await s.login("alice", server.password)
        assert s.header is not None and s.header.get("id") not in (None, before)
    finally:
        await s.close()


async def test_closing_handshake(server: ServerInfo) -> None:
    # §4.4: the entity that receives the closing tag "MUST also send a closing tag" and then terminates
    # the TCP connection.
    async with connect(server, "alice") as c:
        await c.send("</stream:stream>")
        await c.wait_closed()
        assert c.closed_by_peer


async def test_closing_handshake_before_authentication(server: ServerInfo) -> None:
    s = await raw_open(server)
    try:
        await s.send("</stream:stream>")
        await s.wait_closed()
        assert s.closed_by_peer
    finally:
        await s.abort()


async def test_whitespace_keepalive(server: ServerInfo) -> None:
    # §4.6.1: whitespace between top-level elements is a keepalive and not an error.
    async with connect(server, "alice") as c:
        for _ in range(3):
            await c.send(" \n\t ")
        await c.sync()
        await c.send(" ")
        await c.sync()
        assert not c.eof and not any(e.tag == q("stream:error") for e in c.received)


@xfail_on("ejabberd", reason="RFC 6120 §4.9.3.24: ejabberd 23.01 silently ignores an unknown first-level element")
async def test_unknown_top_level_element(server: ServerInfo) -> None:
    # §4.9.3.24 unsupported-stanza-type: "The initiating entity has sent a first-level child of the stream
    # that is not supported by the server."
    async with connect(server, "alice") as c:
        await c.send("<foo xmlns='jabber:client'/>")
        await c.expect_stream_error("unsupported-stanza-type")
        await c.wait_closed()


@xfail_on("prosody", reason="RFC 6120 §4.9.3.12: Prosody 0.12 answers a stanza sent before authentication "
                            "with a service-unavailable stanza error and keeps the stream open")
async def test_stanza_before_authentication(server: ServerInfo) -> None:
    # §4.9.3.12 not-authorized: "The entity has attempted to send XML stanzas or other outbound data before
    # the stream has been authenticated".
    s = await raw_open(server)
    try:
        await s.send(f"<message to='{server.jid('bob')}' type='chat'><body>early</body></message>")
        await s.expect_stream_error("not-authorized")
        await s.wait_closed()
    finally:
        await s.abort()


@xfail_on("ejabberd", reason="RFC 6120 §7.1: ejabberd 23.01 silently drops a stanza sent before binding")
@xfail_on("prosody", reason="RFC 6120 §7.1: Prosody 0.12 answers a stanza sent before binding with a "
                            "service-unavailable stanza error")
async def test_stanza_after_authentication_before_bind(server: ServerInfo) -> None:
    # §7.1: "If, before completing the resource binding step, the client attempts to send an XML stanza to
    # an entity other than the server itself or the client's account, the server MUST NOT process the
    # stanza and MUST close the stream with a <not-authorized/> stream error".
    s = await raw_open(server)
    try:
        await s.login("alice", server.password)
        await s.send(f"<message to='{server.jid('bob')}' type='chat'><body>early</body></message>")
        await s.expect_stream_error("not-authorized")
        await s.wait_closed()
    finally:
        await s.abort()
