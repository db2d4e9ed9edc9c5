"""XEP-0092 Software Version, XEP-0199 XMPP Ping, XEP-0202 Entity Time, XEP-0012 Last Activity."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.conformance.client import NS, assert_stanza_error, connect, q, register_account
from tests.conformance.conftest import ServerInfo, xfail_on
from tests.conformance.contacts import assert_result, bare, subscribe
from tests.conformance.contacts import get_iq as _get

PING = f"<ping xmlns='{NS['ping']}'/>"
LAST = f"<query xmlns='{NS['last']}'/>"


# --- XEP-0092 ---
async def test_version_of_the_server(server: ServerInfo) -> None:
    # XEP-0092 §2: the result holds <name/> and <version/> (<os/> is optional).
    async with connect(server, "alice") as c:
        query = assert_result(await c.iq(_get(server.domain, f"<query xmlns='{NS['version']}'/>")), "version:query")
    assert query is not None
    assert (query.findtext(q("version:name")) or "").strip()
    assert (query.findtext(q("version:version")) or "").strip()


async def test_version_to_a_full_jid_is_answered_by_that_client(server: ServerInfo) -> None:
    # XEP-0092 §2 / RFC 6120 §10.5.4: a query to a full JID is delivered to that resource.
    async with connect(server, "bob", presence=True) as bob, connect(server, "alice") as alice:
        await alice.send(f"<iq type='get' id='v1' to='{bob.jid}'><query xmlns='{NS['version']}'/></iq>")
        request = await bob.expect("self::c:iq[@id='v1']")
        assert request.get("from") == alice.jid
        await bob.send(f"<iq type='result' id='v1' to='{alice.jid}'><query xmlns='{NS['version']}'>"
                       "<name>raw</name><version>1</version></query></iq>")
        reply = await alice.expect("self::c:iq[@id='v1']")
    assert reply.get("from") == bob.jid and reply.findtext(f"{q('version:query')}/{q('version:name')}") == "raw"


# --- XEP-0199 ---
async def test_ping_the_server(server: ServerInfo) -> None:
    # XEP-0199 §4.2: the server answers a ping addressed to it with an empty IQ result.
    async with connect(server, "alice") as c:
        reply = await c.iq(_get(server.domain, PING))
    assert_result(reply)
    assert reply.get("from") == server.domain and len(reply) == 0


async def test_ping_own_bare_jid(server: ServerInfo) -> None:
    # RFC 6120 §10.3.3 with XEP-0199: an IQ to the sender's own bare JID is answered by the server.
    async with connect(server, "alice") as c:
        assert_result(await c.iq(_get(server.jid("alice"), PING)))


async def test_ping_offline_full_jid_is_service_unavailable(server: ServerInfo) -> None:
    # XEP-0199 §4.3 and RFC 6121 §8.5.3.2.1: no such resource → <service-unavailable/>.
    async with connect(server, "alice") as c:
        reply = await c.iq(_get(server.jid("bob", "gone-resource"), PING))
    assert_stanza_error(reply, "cancel", "service-unavailable")


async def test_ping_full_jid_reaches_the_client(server: ServerInfo) -> None:
    # XEP-0199 §4.3: client-to-client ping goes to the resource, which answers.
    async with connect(server, "bob", presence=True) as bob, connect(server, "alice") as alice:
        await alice.send(f"<iq type='get' id='p1' to='{bob.jid}'>{PING}</iq>")
        await bob.expect("self::c:iq[@id='p1'][ping:ping]")
        await bob.send(f"<iq type='result' id='p1' to='{alice.jid}'/>")
        reply = await alice.expect("self::c:iq[@id='p1']")
    assert reply.get("type") == "result" and reply.get("from") == bob.jid


# --- XEP-0202 ---
async def test_entity_time_format(server: ServerInfo) -> None:
    # XEP-0202 §3: <tzo/> is a XEP-0082 TZD ("Z" or ±hh:mm); <utc/> a XEP-0082 DateTime in UTC ("Z").
    async with connect(server, "alice") as c:
        payload = assert_result(await c.iq(_get(server.domain, f"<time xmlns='{NS['time']}'/>")), "time:time")
    assert payload is not None
    assert re.fullmatch(r"Z|[+-]\d\d:\d\d", payload.findtext(q("time:tzo")) or "")
    utc = payload.findtext(q("time:utc")) or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", utc), utc
    stamp = datetime.fromisoformat(utc.replace("Z", "+00:00"))
    assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=5)  # the same machine's clock


# --- XEP-0012 ---
async def test_server_uptime(server: ServerInfo) -> None:
    # XEP-0012 §4: 'seconds' is the uptime; the query SHOULD NOT contain character data.
    async with connect(server, "alice") as c:
        query = assert_result(await c.iq(_get(server.domain, LAST)), "last:query")
    assert query is not None
    assert re.fullmatch(r"\d+", query.get("seconds") or "")
    assert not (query.text or "").strip()


async def test_last_logout_with_status_text(server: ServerInfo) -> None:
    # XEP-0012 §2: to a bare JID, seconds since the last logout and the status text of the last
    # unavailable presence.
    watcher_name, target_name = await register_account(server), await register_account(server)
    async with connect(server, watcher_name, roster=True, presence=True) as watcher:
        async with connect(server, target_name, roster=True, presence=True) as target:
            await subscribe(watcher, target)
            target_jid = bare(target)
            await target.send("<presence type='unavailable'><status>Heading Home</status></presence>")
        await watcher.expect(f"self::c:presence[@type='unavailable' and starts-with(@from, '{target_jid}/')]")
        query = assert_result(await watcher.iq(_get(target_jid, LAST)), "last:query")
    assert query is not None
    assert re.fullmatch(r"\d+", query.get("seconds") or "")
    assert (query.text or "").strip() == "Heading Home"


@xfail_on("ejabberd", reason="XEP-0012 §2: MUST return Forbidden; ejabberd answers <subscription-required/>")
async def test_last_activity_needs_a_subscription(server: ServerInfo) -> None:
    # XEP-0012 §2: MUST NOT answer an entity not authorized to see the user's presence; MUST be <forbidden/>.
    stranger = await register_account(server)
    async with connect(server, stranger) as c:
        reply = await c.iq(_get(server.jid("dave"), LAST))
    assert_stanza_error(reply, None, "forbidden")


async def test_last_activity_of_an_online_user_is_zero(server: ServerInfo) -> None:
    # XEP-0012 §2: with at least one available resource the answer SHOULD be seconds='0'.
    watcher_name, target_name = await register_account(server), await register_account(server)
    async with connect(server, watcher_name, roster=True, presence=True) as watcher, \
            connect(server, target_name, roster=True, presence=True) as target:
        await subscribe(watcher, target)
        query = assert_result(await watcher.iq(_get(bare(target), LAST)), "last:query")
    assert query is not None and query.get("seconds") == "0"


@xfail_on("ejabberd", reason="RFC 6120 §10.5.4 / XEP-0012 §3: an IQ to a connected full JID is delivered to "
          "that client; ejabberd answers jabber:iq:last itself")
async def test_last_activity_to_a_full_jid_goes_to_the_client(server: ServerInfo) -> None:
    # XEP-0012 §3: a query to a full JID is answered by that resource (idle time), so it is forwarded.
    async with connect(server, "bob", presence=True) as bob, connect(server, "alice") as alice:
        await alice.send(f"<iq type='get' id='l1' to='{bob.jid}'>{LAST}</iq>")
        await bob.expect("self::c:iq[@id='l1'][last:query]")
