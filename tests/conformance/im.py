"""Helpers for the RFC 6121 conformance tests: fresh accounts, roster items and pushes, subscriptions.

Every RFC 6121 test works on accounts registered for it alone (XEP-0077 on every server under test), so
roster and subscription state never leaks from one test into another on the long-lived peers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lxml import etree

from tests.conformance.client import NS, XmppStream, connect, q, register_account
from tests.conformance.conftest import ServerInfo

ROSTER = NS["roster"]


async def fresh_users(server: ServerInfo, count: int) -> list[str]:
    """`count` new accounts (local parts) on `server`."""
    return list(await asyncio.gather(*(register_account(server) for _ in range(count))))


def bare(stream: XmppStream) -> str:
    """The bare JID a logged-in stream is bound to."""
    assert stream.jid is not None
    return stream.jid.split("/")[0]


def localpart(stream: XmppStream) -> str:
    """The account (local part) a logged-in stream belongs to, to open another session for it."""
    return bare(stream).split("@")[0]


@asynccontextmanager
async def online_pair(server: ServerInfo) -> AsyncIterator[tuple[XmppStream, XmppStream]]:
    """Two fresh accounts, each with one interested, available session (roster fetched, initial presence
    processed)."""
    first, second = await fresh_users(server, 2)
    async with connect(server, first, roster=True, presence=True) as a, \
            connect(server, second, roster=True, presence=True) as b:
        await a.sync()
        await b.sync()
        yield a, b


@asynccontextmanager
async def subscribed_pair(server: ServerInfo) -> AsyncIterator[tuple[XmppStream, XmppStream]]:
    """An online pair where the first has subscribed to the second's presence (first 'to', second
    'from'), with both inboxes emptied afterwards."""
    async with online_pair(server) as (user, contact):
        await subscribe(user, contact, bare(user), bare(contact))
        user.drain()
        contact.drain()
        yield user, contact


async def item_state(server: ServerInfo, user: str, jid: str) -> tuple[str | None, str | None] | None:
    """(subscription, ask) of `user`'s roster item for `jid`, read in a new session; None without item."""
    async with connect(server, user) as c:
        item = await roster_item(c, jid)
    return None if item is None else (item.get("subscription"), item.get("ask"))


async def settle(*streams: XmppStream) -> None:
    """A round trip on every stream: whatever the server routed before is in the inboxes."""
    for stream in streams:
        await stream.sync()


def roster_set(jid: str, *, attrs: str = "", children: str = "") -> str:
    """A roster set IQ with one <item/> for `jid`."""
    return f"<iq type='set'><query xmlns='{ROSTER}'><item jid='{jid}' {attrs}>{children}</item></query></iq>"


async def roster_get(c: XmppStream, ver: str | None = None) -> etree._Element:
    """The roster result (asserts type result); `ver` adds the versioning attribute (RFC 6121 §2.6)."""
    attr = f" ver='{ver}'" if ver is not None else ""
    reply = await c.iq(f"<iq type='get'><query xmlns='{ROSTER}'{attr}/></iq>")
    assert reply.get("type") == "result", etree.tostring(reply)
    return reply


async def roster_item(c: XmppStream, jid: str) -> etree._Element | None:
    """The <item/> for `jid` in a fresh roster get, or None."""
    reply = await roster_get(c)
    for item in reply.iter(q("roster:item")):
        if item.get("jid") == jid:
            return item
    return None


def is_push(jid: str | None = None, **attrs: str | None) -> object:
    """Matcher for a roster push (an IQ set with a roster query) about `jid` with these item attributes
    (value None: the attribute must be absent)."""

    def match(e: etree._Element) -> bool:
        if e.tag != q("c:iq") or e.get("type") != "set":
            return False
        item = e.find(f"{q('roster:query')}/{q('roster:item')}")
        if item is None or (jid is not None and item.get("jid") != jid):
            return False
        return all(item.get(k) == v for k, v in attrs.items())

    return match


async def expect_push(c: XmppStream, jid: str, timeout: float = 5.0, **attrs: str | None) -> etree._Element:
    """Wait for a roster push about `jid` matching `attrs`, acknowledge it (RFC 6121 §2.1.6) and return
    the push. The push must come from the user's bare JID or carry no 'from'."""
    push = await c.expect(is_push(jid, **attrs), timeout)
    assert c.jid is not None
    assert push.get("from") in (None, c.jid.split("/")[0]), f"roster push from {push.get('from')}"
    await c.send(f"<iq type='result' id='{push.get('id')}'/>")
    return push


def is_presence(from_: str | None = None, type_: str | None = None, *, bare_from: bool = False) -> object:
    """Matcher for a presence from `from_` (exact; or its bare part when bare_from) of `type_`
    (None: available presence, that is no 'type')."""

    def match(e: etree._Element) -> bool:
        if e.tag != q("c:presence") or e.get("type") != type_:
            return False
        sender = e.get("from", "")
        if bare_from:
            sender = sender.split("/")[0]
        return from_ is None or sender == from_

    return match


async def subscribe(user: XmppStream, contact: XmppStream, user_jid: str, contact_jid: str) -> None:
    """`user` subscribes to `contact`'s presence and `contact` approves (both online and interested):
    afterwards user's item for contact is 'to' (or 'both') and contact's item for user 'from' (or 'both')."""
    await user.send(f"<presence to='{contact_jid}' type='subscribe'/>")
    await contact.expect(is_presence(user_jid, "subscribe"))
    await contact.send(f"<presence to='{user_jid}' type='subscribed'/>")
    await user.expect(is_presence(contact_jid, "subscribed", bare_from=True))
    await user.sync()
    await contact.sync()


def priority(value: int, extra: str = "") -> str:
    """An available presence broadcast with this priority."""
    return f"<presence><priority>{value}</priority>{extra}</presence>"
