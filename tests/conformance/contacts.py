"""Helpers for the core-XEP conformance tests: fresh accounts and presence subscriptions over raw XML."""

from __future__ import annotations

from lxml import etree

from tests.conformance.client import NS, XmppStream, q, to_string


def roster_push_for(contact: str, subscriptions: tuple[str, ...]) -> object:
    """A matcher for a roster push (RFC 6121 §2.1.6) of `contact` with one of `subscriptions`."""

    def match(elem: etree._Element) -> bool:
        if elem.tag != q("c:iq") or elem.get("type") != "set":
            return False
        item = elem.find(f"{q('roster:query')}/{q('roster:item')}")
        return item is not None and item.get("jid") == contact and item.get("subscription") in subscriptions

    return match


async def subscribe(watcher: XmppStream, target: XmppStream) -> None:
    """`watcher` subscribes to `target`'s presence and `target` approves (RFC 6121 §3.1): afterwards the
    target's roster has the watcher with 'from' (or 'both'). Both streams must have fetched their roster
    and sent initial presence."""
    assert watcher.jid is not None and target.jid is not None
    watcher_bare, target_bare = watcher.jid.split("/")[0], target.jid.split("/")[0]
    await watcher.send(f"<presence to='{target_bare}' type='subscribe'/>")
    await target.expect(f"self::c:presence[@type='subscribe' and starts-with(@from, '{watcher_bare}')]")
    await target.send(f"<presence to='{watcher_bare}' type='subscribed'/>")
    await watcher.expect(roster_push_for(target_bare, ("to", "both")))  # type: ignore[arg-type]
    await target.expect(roster_push_for(watcher_bare, ("from", "both")))  # type: ignore[arg-type]


def assert_result(reply: etree._Element, payload: str | None = None) -> etree._Element | None:
    """Assert `reply` is an IQ result; return its payload element `payload` (a prefixed name), if asked."""
    assert reply.get("type") == "result", f"not a result: {to_string(reply)}"
    if payload is None:
        return None
    found = reply.find(q(payload))
    assert found is not None, f"no {payload} in {to_string(reply)}"
    return found


def get_iq(to: str, payload: str) -> str:
    """An IQ get addressed to `to` carrying `payload`."""
    return f"<iq type='get' to='{to}'>{payload}</iq>"


def bare(stream: XmppStream) -> str:
    assert stream.jid is not None
    return stream.jid.split("/")[0]


def ack_pushes(stream: XmppStream) -> None:
    """Forget roster pushes and presence waiting in the inbox (they are not what a test looks at)."""
    stream.inbox = [e for e in stream.inbox if not (e.tag == q("c:presence") or e.find(q("roster:query")) is not None)]


__all__ = ["NS", "ack_pushes", "assert_result", "bare", "get_iq", "roster_push_for", "subscribe"]
