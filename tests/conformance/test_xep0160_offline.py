"""XEP-0160 Best Practices for Handling Offline Messages (1.0.1), with XEP-0203 delay stamps."""

from __future__ import annotations

import re

from tests.conformance.client import NS, connect, q, register_account
from tests.conformance.conftest import ServerInfo


async def test_stored_types_order_and_delay(server: ServerInfo) -> None:
    # §3: messages of type normal (or none) and chat are stored offline; headline and groupchat are not.
    # §2: delivered with initial presence (non-negative priority), in order, RECOMMENDED with a XEP-0203
    # <delay/> whose 'from' is the server and whose stamp is a UTC DateTime.
    name = await register_account(server)
    to = server.jid(name)
    async with connect(server, "alice") as alice:
        await alice.send(f"<message to='{to}' id='o1'><body>first</body></message>")
        await alice.send(f"<message to='{to}' id='o2' type='chat'><body>second</body></message>")
        await alice.send(f"<message to='{to}' id='o3' type='headline'><body>news</body></message>")
        await alice.send(f"<message to='{to}' id='o4' type='normal'><body>third</body></message>")
        await alice.sync()
        await alice.assert_nothing("self::c:message[@type='error']")
    async with connect(server, name) as user:
        await user.send("<presence/>")
        got = [await user.expect("self::c:message[c:body]") for _ in range(3)]
        await user.assert_nothing("self::c:message[@id='o3']")
    assert [m.findtext(q("c:body")) for m in got] == ["first", "second", "third"]
    for message in got:
        delay = message.find(f"{{{NS['delay']}}}delay")
        assert delay is not None
        assert delay.get("from") == server.domain
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", delay.get("stamp") or "")


async def test_negative_priority_does_not_receive_offline_messages(server: ServerInfo) -> None:
    # §2: offline messages go to a resource that sends initial presence with a non-negative priority.
    name = await register_account(server)
    async with connect(server, "alice") as alice:
        await alice.send(f"<message to='{server.jid(name)}' id='n1'><body>later</body></message>")
        await alice.sync()
    async with connect(server, name) as user:
        await user.send("<presence><priority>-1</priority></presence>")
        await user.assert_nothing("self::c:message[@id='n1']")
