"""The federation scenario of the product brief, one test per step, between two real Parlours:
juliet@capulet.example writes to romeo@montague.example.

1. Juliet's client sends her message to capulet.example. If montague.example is blocked on capulet.example,
   the message is dropped there.
2. capulet.example opens a connection to montague.example. If capulet.example is blocked on
   montague.example, the message is dropped.
3. If Romeo is not connected, montague.example stores the message for later delivery; otherwise it
   delivers it to Romeo.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.config.model import FederationConfig
from tests.integration.federated import parlour_pair
from tests.integration.harness import Harness

CAPULET, MONTAGUE = "capulet.example", "montague.example"
JULIET, ROMEO = f"juliet@{CAPULET}", f"romeo@{MONTAGUE}"


def links(h: Harness) -> list:
    assert h.server.federation is not None
    return list(h.server.federation.federation.connections())


async def stored_for_romeo(montague: Harness) -> list[bytes]:
    assert montague.server.stores is not None
    return [m.stanza for m in await montague.server.stores.offline.fetch(MONTAGUE, "romeo")]


async def test_step1_montague_blocked_on_capulet_drops_the_message_there(tmp_path: Path) -> None:
    blocking = FederationConfig(enabled=True, blocked_domains=(MONTAGUE,))
    async with parlour_pair(tmp_path, CAPULET, MONTAGUE, first_federation=blocking) as (capulet, montague):
        await montague.user("romeo")
        juliet = await capulet.client(await capulet.user("juliet"))
        juliet.send_message(mto=ROMEO, mbody="Wherefore art thou?", mtype="chat")
        error = await juliet.next_message(10)
        # the sender is told why (RFC 6120 §8.3.3.9), and the message never left capulet.example
        assert error["type"] == "error" and error["from"] == ROMEO
        assert error["error"]["condition"] == "not-allowed"
        assert links(capulet) == [] and links(montague) == []
        assert await stored_for_romeo(montague) == []


async def test_step2_capulet_blocked_on_montague_drops_the_message(tmp_path: Path) -> None:
    blocking = FederationConfig(enabled=True, blocked_domains=(CAPULET,))
    async with parlour_pair(tmp_path, CAPULET, MONTAGUE, second_federation=blocking,
                            queue_timeout=2.0) as (capulet, montague):
        await montague.user("romeo")  # offline: a message let through would be stored
        juliet = await capulet.client(await capulet.user("juliet"))
        juliet.send_message(mto=ROMEO, mbody="Wherefore art thou?", mtype="chat")
        error = await juliet.next_message(15)
        # montague.example refused capulet.example's stream: the message comes back to juliet
        assert error["type"] == "error" and error["from"] == ROMEO
        assert error["error"]["condition"] in ("remote-server-not-found", "remote-server-timeout")
        assert [link for link in links(montague) if link.machine.pairs] == []
        assert await stored_for_romeo(montague) == []
        romeo = await montague.client(ROMEO)
        with pytest.raises(TimeoutError):
            await romeo.next_message(1)


async def test_step3_romeo_offline_montague_stores_and_delivers_at_his_next_login(tmp_path: Path) -> None:
    async with parlour_pair(tmp_path, CAPULET, MONTAGUE) as (capulet, montague):
        await montague.user("romeo")
        juliet = await capulet.client(await capulet.user("juliet"))
        juliet.send_message(mto=ROMEO, mbody="Wherefore art thou?", mtype="chat")
        async with asyncio.timeout(10):
            while not (stored := await stored_for_romeo(montague)):
                await asyncio.sleep(0.05)
        assert len(stored) == 1 and b"Wherefore art thou?" in stored[0]
        romeo = await montague.client(ROMEO)
        got = await romeo.next_message(10)
        assert got["body"] == "Wherefore art thou?" and got["from"].bare == JULIET
        assert got["delay"]["from"] == MONTAGUE  # stamped by the server that kept it
        async with asyncio.timeout(5):  # handed over once, then removed (after the send)
            while await stored_for_romeo(montague):
                await asyncio.sleep(0.05)


async def test_step3_romeo_online_gets_the_message_at_once(tmp_path: Path) -> None:
    async with parlour_pair(tmp_path, CAPULET, MONTAGUE) as (capulet, montague):
        romeo = await montague.client(await montague.user("romeo"))
        juliet = await capulet.client(await capulet.user("juliet"))
        juliet.send_message(mto=ROMEO, mbody="Wherefore art thou?", mtype="chat")
        got = await romeo.next_message(10)
        assert got["body"] == "Wherefore art thou?" and got["from"].bare == JULIET
        assert got["delay"]["stamp"] is None  # live, not from storage
        assert await stored_for_romeo(montague) == []
        [link] = [link for link in links(capulet) if link.outgoing]
        assert link.machine.remote == MONTAGUE
