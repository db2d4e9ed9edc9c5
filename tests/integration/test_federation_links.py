"""A connection to another server that breaks mid-stream, two Parlours over real sockets: what was written
but not confirmed is neither lost nor delivered twice.

The break is made on b.test's side: it stops reading a.test's stream (stanzas pile up unread, as on a
server that hangs) and then drops the socket without a word (as a crash or a cut network does)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from lxml import etree

from appliance.core.s2s import ServerConnection
from appliance.core.s2s import connection as s2s_connection
from appliance.xmpp.ns import NS_SERVER
from appliance.xmpp.parser import Stanza, StreamParser
from tests.integration.federated import parlour_pair
from tests.integration.harness import Client, Harness


def _link(h: Harness, *, outgoing: bool) -> ServerConnection:
    assert h.server.federation is not None
    [link] = [c for c in h.server.federation.federation.connections() if c.outgoing == outgoing and c.machine.pairs]
    return link


async def _until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def _break_mid_stream(a: Harness, b: Harness, juliet: Client, romeo: Client) -> list[str]:
    """m0-m9 arrive; then b.test stops reading, m10-m29 are written unread, and b.test drops the socket.
    Returns the bodies sent."""
    bodies = [f"m{i}" for i in range(30)]
    for body in bodies[:10]:
        juliet.send_message(mto="romeo@b.test", mbody=body, mtype="chat")
    for body in bodies[:10]:
        assert (await romeo.next_message(10))["body"] == body
    out, incoming = _link(a, outgoing=True), _link(b, outgoing=False)
    incoming.writer.transport.pause_reading()
    for body in bodies[10:]:
        juliet.send_message(mto="romeo@b.test", mbody=body, mtype="chat")
    await _until(lambda: out.stanzas_out >= 30)  # all written by a.test, none read by b.test
    incoming.abort()
    return bodies


async def test_with_stream_management_the_stream_resumes_and_nothing_is_lost_or_repeated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.core.s2s.federation")
    async with parlour_pair(tmp_path, "a.test", "b.test") as (a, b):
        juliet = await a.client(await a.user("juliet"))
        romeo = await b.client(await b.user("romeo"))
        bodies = await _break_mid_stream(a, b, juliet, romeo)
        got = [(await romeo.next_message(15))["body"] for _ in bodies[10:]]
        assert got == bodies[10:]  # all of them, in order
        with pytest.raises(TimeoutError):
            await romeo.next_message(1.5)  # and none twice
        assert "stream resumed; 20 stanza(s) to send again" in caplog.text
        assert juliet.messages.empty()  # nothing bounced
        second = _link(a, outgoing=True)
        assert second.machine.sm_requested and not second.unacked  # the peer confirmed everything


async def test_without_stream_management_what_may_be_lost_bounces(tmp_path: Path) -> None:
    async with parlour_pair(tmp_path, "a.test", "b.test", stream_management=False) as (a, b):
        juliet = await a.client(await a.user("juliet"))
        romeo = await b.client(await b.user("romeo"))
        bodies = await _break_mid_stream(a, b, juliet, romeo)
        assert not _link(a, outgoing=True).machine.sm_requested
        bounced: set[str] = set()
        while not set(bodies[10:]) <= bounced:
            error = await juliet.next_message(15)
            assert error["type"] == "error" and error["error"]["condition"] == "remote-server-timeout"
            assert error["error"]["text"] == "The connection to b.test broke; this may not have arrived"
            bounced.add(error["body"])
        # nothing silently lost: the unread ones came back to juliet; the link works again afterwards
        juliet.send_message(mto="romeo@b.test", mbody="after", mtype="chat")
        assert (await romeo.next_message(15))["body"] == "after"


async def test_acknowledgements_are_requested_every_n_stanzas_each_in_the_same_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone stanza is confirmed within ACK_DELAY. Then stanzas one at a time (each awaited at the other
    end): a.test asks for a confirmation after every ACK_EVERY of them, not after each, its <r/> in the same
    send as the stanza before it; the stanzas on the wire are the jabber:server ones, in order."""
    count = s2s_connection.ACK_EVERY + 8
    async with parlour_pair(tmp_path, "a.test", "b.test") as (a, b):
        juliet = await a.client(await a.user("juliet"))
        romeo = await b.client(await b.user("romeo"))
        juliet.send_message(mto="romeo@b.test", mbody="first", mtype="chat")
        assert (await romeo.next_message(10))["body"] == "first"
        out = _link(a, outgoing=True)
        await _until(lambda: out.sm_sent == out.sm_acked == 1 and not out.unacked)  # within ACK_DELAY
        monkeypatch.setattr(s2s_connection, "ACK_DELAY", 60.0)  # from here only the count asks
        sends: list[bytes] = []
        write = out.writer.write
        out.writer.write = lambda data: (sends.append(data), write(data))[1]  # type: ignore[method-assign]
        for i in range(count):
            juliet.send_message(mto="romeo@b.test", mbody=f"m{i}", mtype="chat")
            assert (await romeo.next_message(10))["body"] == f"m{i}"
        await _until(lambda: out.sm_acked >= 1 + s2s_connection.ACK_EVERY)
        events = StreamParser(max_stanza_size=65_536, max_depth=64).feed(
            f"<stream:stream xmlns='{NS_SERVER}' xmlns:stream='http://etherx.jabber.org/streams'>".encode()
            + b"".join(sends))
        stanzas = [e.element for e in events if isinstance(e, Stanza)]
        messages = [e for e in stanzas if e.tag == f"{{{NS_SERVER}}}message"]
        assert [m.findtext(f"{{{NS_SERVER}}}body") for m in messages] == [f"m{i}" for i in range(count)]
        assert all(m.get("from", "").startswith("juliet@a.test/") for m in messages)
        requests = [e for e in stanzas if etree.QName(e).localname == "r"]
        assert len(requests) == 1  # after the ACK_EVERY-th stanza
        [together] = [chunk for chunk in sends if b"<r " in chunk]
        assert f"m{s2s_connection.ACK_EVERY - 1}<".encode() in together  # one send: the stanza, then <r/>
        assert len(out.unacked) == count - s2s_connection.ACK_EVERY


async def test_a_stream_error_from_the_peer_bounces_what_it_may_not_have_taken(tmp_path: Path) -> None:
    """b.test ends a.test's stream with a stream error (a stanza over its size limit) with more behind it:
    nothing says which of those it took, so they go back to juliet as possibly undelivered instead of
    vanishing as after a polite close (without stream management: on a bidirectional stream's way back,
    or with a peer that does not offer it)."""
    async with parlour_pair(tmp_path, "a.test", "b.test", stream_management=False,
                            max_remote_stanza_size=4096) as (a, b):
        juliet = await a.client(await a.user("juliet"))
        romeo = await b.client(await b.user("romeo"))
        juliet.send_message(mto="romeo@b.test", mbody="first", mtype="chat")
        assert (await romeo.next_message(10))["body"] == "first"
        out, incoming = _link(a, outgoing=True), _link(b, outgoing=False)
        incoming.writer.transport.pause_reading()  # b.test reads all three at once, then fails the first
        bodies = ["x" * 6000, "after 1", "after 2"]
        for body in bodies:
            juliet.send_message(mto="romeo@b.test", mbody=body, mtype="chat")
        await _until(lambda: out.stanzas_out >= 4)
        incoming.writer.transport.resume_reading()
        bounced: set[str] = set()
        while not set(bodies) <= bounced:
            error = await juliet.next_message(15)
            assert error["type"] == "error" and error["error"]["condition"] == "remote-server-timeout"
            bounced.add(error["body"])
        assert out.machine.peer_error == "policy-violation"
