"""Smoke tests of the conformance harness itself: log in, bind, disco#info on the server."""

from __future__ import annotations

from tests.conformance.client import NS, connect, q, register_account
from tests.conformance.conftest import ServerInfo


async def test_login_and_bind(server: ServerInfo) -> None:
    async with connect(server, "alice", resource="smoke") as c:
        assert c.jid == server.jid("alice", "smoke")


async def test_disco_info_on_server(server: ServerInfo) -> None:
    async with connect(server, "bob") as c:
        reply = await c.iq(f"<iq type='get' to='{server.domain}'><query xmlns='{NS['disco']}'/></iq>")
        assert reply.get("type") == "result"
        features = {f.get("var") for f in reply.iter(q("disco:feature"))}
        assert NS["disco"] in features


async def test_register_account_then_login(server: ServerInfo) -> None:
    name = await register_account(server)
    async with connect(server, name) as c:
        assert c.jid is not None and c.jid.startswith(server.jid(name) + "/")
