"""Raw XML helpers for integration tests of features slixmpp has no plugin for (or we bypass)."""

from __future__ import annotations

import asyncio
from xml.etree import ElementTree as ET

from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.integration.harness import Client


async def iq(client: Client, itype: str, payload: str, to: str | None = None) -> ET.Element:
    """Send an IQ with one raw payload and return the result stanza; raises IqError on an error."""
    request = client.make_iq(ito=to, itype=itype)
    request.append(ET.fromstring(payload))
    return (await request.send(timeout=10)).xml


async def iq_error(client: Client, itype: str, payload: str, to: str | None = None) -> ET.Element:
    """Send an IQ that must fail; returns the <error/> element."""
    try:
        await iq(client, itype, payload, to)
    except IqError as exc:
        return exc.iq.xml.find("{jabber:client}error")
    raise AssertionError("the IQ succeeded")


def condition(error: ET.Element) -> str:
    """The defined condition of an <error/>."""
    for child in error:
        if child.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}") and not child.tag.endswith("}text"):
            return child.tag.partition("}")[2]
    return ""


def send_message(client: Client, to: str, body: str | None, *, mtype: str = "chat", extra: str = "") -> None:
    """Send a message with an optional body and raw extra children."""
    msg = client.make_message(mto=to, mbody=body, mtype=mtype)
    if extra:
        for child in ET.fromstring(f"<x>{extra}</x>"):
            msg.append(child)
    msg.send()


async def no_message(client: Client, wait: float = 0.5) -> None:
    """Nothing arrives within `wait` seconds (used after a later marker message proves ordering)."""
    try:
        msg = await asyncio.wait_for(client.messages.get(), wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message: {msg}")


def raw_messages(client: Client) -> asyncio.Queue[ET.Element]:
    """Every <message/> the client receives, as XML, including ones slixmpp has no event for."""
    queue: asyncio.Queue[ET.Element] = asyncio.Queue()
    client.register_handler(
        Callback("raw messages", MatchXPath("{jabber:client}message"), lambda msg: queue.put_nowait(msg.xml))
    )
    return queue


async def next_raw(queue: asyncio.Queue[ET.Element], timeout: float = 5.0) -> ET.Element:
    return await asyncio.wait_for(queue.get(), timeout)
