"""XEP-0049 Private XML Storage (1.2), from the text."""

from __future__ import annotations

from tests.conformance.client import NS, assert_stanza_error, connect, register_account, stanza_error
from tests.conformance.conftest import ServerInfo, xfail_on
from tests.conformance.contacts import assert_result

PRIV = NS["private"]


async def test_store_then_retrieve(server: ServerInfo) -> None:
    # §2.3 examples 1 and 2.
    name = await register_account(server)
    async with connect(server, name) as c:
        assert_result(await c.iq(f"<iq type='set'><query xmlns='{PRIV}'><exodus xmlns='exodus:prefs'>"
                                 "<defaultnick>Hamlet</defaultnick></exodus></query></iq>"))
        query = assert_result(await c.iq(f"<iq type='get'><query xmlns='{PRIV}'><exodus xmlns='exodus:prefs'/>"
                                         "</query></iq>"), "private:query")
    assert query is not None
    assert query.findtext("{exodus:prefs}exodus/{exodus:prefs}defaultnick") == "Hamlet"


async def test_nothing_stored_returns_the_empty_element(server: ServerInfo) -> None:
    # §2.1: the result holds the requested element, in its own namespace, even when nothing is stored.
    name = await register_account(server)
    async with connect(server, name) as c:
        query = assert_result(await c.iq(f"<iq type='get'><query xmlns='{PRIV}'><prefs xmlns='urn:example:none'/>"
                                         "</query></iq>"), "private:query")
    assert query is not None
    child = query.find("{urn:example:none}prefs")
    assert child is not None and len(child) == 0


@xfail_on("prosody", reason="XEP-0049 §2.3: an empty query MUST be answered <not-acceptable/>; Prosody "
          "answers <bad-format/>, which is no RFC 6120 stanza error condition")
@xfail_on("ejabberd", reason="XEP-0049 §2.3: an empty query MUST be answered <not-acceptable/>; ejabberd "
          "answers <bad-request/>")
async def test_set_without_child_is_not_acceptable(server: ServerInfo) -> None:
    # §2.3: "At least one child element with a proper namespace MUST be included; otherwise the server MUST
    # respond with a Not Acceptable error" (the example is an IQ set).
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='set'><query xmlns='{PRIV}'/></iq>")
    assert_stanza_error(reply, "modify", "not-acceptable")


@xfail_on("prosody", reason="XEP-0049 §2.3: Prosody answers <bad-format/>, which is no RFC 6120 stanza "
          "error condition (the text allows Bad Format, i.e. bad-request, or not-acceptable)")
async def test_get_without_child_is_refused(server: ServerInfo) -> None:
    # §2.3: an IQ get without a child SHOULD get "Bad Format" (bad-request in RFC 6120 terms); some
    # implementations answer not-acceptable, which the text allows too.
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='get'><query xmlns='{PRIV}'/></iq>")
    assert reply.get("type") == "error"
    assert stanza_error(reply)[1] in ("bad-request", "not-acceptable")


@xfail_on("ejabberd", reason="XEP-0049 §2.3: MUST be Not Acceptable; ejabberd answers <bad-request/>")
@xfail_on("prosody", reason="XEP-0049 §2.3: a stored element needs its own namespace (MUST, else Not "
          "Acceptable); Prosody stores it")
async def test_child_without_namespace_is_not_acceptable(server: ServerInfo) -> None:
    # §2.3: the stored element MUST be in its own namespace (a child in jabber:iq:private is not).
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='set'><query xmlns='{PRIV}'><prefs/></query></iq>")
    assert_stanza_error(reply, None, "not-acceptable")


async def test_reserved_namespace_is_refused_or_stored(server: ServerInfo) -> None:
    # §2.3: refusing reserved namespaces ('jabber:*', 'http://jabber.org/*', 'vcard-temp') is OPTIONAL;
    # when refused the error is Not Acceptable.
    name = await register_account(server)
    async with connect(server, name) as c:
        reply = await c.iq(f"<iq type='set'><query xmlns='{PRIV}'><query xmlns='jabber:iq:roster'/></query></iq>")
    if reply.get("type") == "error":
        assert_stanza_error(reply, None, "not-acceptable")


async def test_someone_elses_data_is_forbidden(server: ServerInfo) -> None:
    # §2.3 and §4: MUST return Forbidden or Service Unavailable (the former preferable).
    async with connect(server, "alice") as c:
        for kind in ("get", "set"):
            reply = await c.iq(f"<iq type='{kind}' to='{server.jid('bob')}'><query xmlns='{PRIV}'>"
                               "<exodus xmlns='exodus:prefs'><defaultnick>Macbeth</defaultnick></exodus></query></iq>")
            assert reply.get("type") == "error"
            assert stanza_error(reply)[1] in ("forbidden", "service-unavailable")


@xfail_on("prosody", reason="XEP-0049 §2.3: 'an IQ set ... MAY contain multiple elements qualified by the same "
          "namespace'; Prosody refuses any query without exactly one child (<bad-format/>)")
async def test_set_with_several_elements_of_one_namespace(server: ServerInfo) -> None:
    # §2.3: "an IQ set or result MAY contain multiple elements qualified by the same namespace".
    name = await register_account(server)
    async with connect(server, name) as c:
        assert_result(await c.iq(f"<iq type='set'><query xmlns='{PRIV}'><a xmlns='urn:example:multi'>1</a>"
                                 "<b xmlns='urn:example:multi'>2</b></query></iq>"))
        query = assert_result(await c.iq(f"<iq type='get'><query xmlns='{PRIV}'><b xmlns='urn:example:multi'/>"
                                         "</query></iq>"), "private:query")
    assert query is not None
    assert query.findtext("{urn:example:multi}b") == "2"
