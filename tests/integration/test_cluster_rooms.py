# ruff: noqa: F811
"""Chat rooms across three Parlour nodes (real PostgreSQL, real Redis, slixmpp clients on different nodes):
one node runs a room through its lease, the others route to it; a killed owner's rooms are taken over."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from slixmpp import JID

from tests.integration.cluster_nodes import ADMIN, EXPIRY, PASSWORD, Cluster, ping
from tests.integration.harness import Client
from tests.integration.process import parlour

# The fixtures of the other cluster tests (three nodes on the session's PostgreSQL, started afresh for
# this module); the tests take `cluster` as an argument, which ruff reads as a redefinition (F811).
from tests.integration.test_cluster_sync import _clients_closed, cluster  # noqa: F401
from tests.integration.test_muc import NS_USER, codes, create_room, groupchat, presence_from
from tests.redisserver import RedisServer
from tests.web.console_helpers import admin_login, csrf_of, http_session

pytestmark = pytest.mark.asyncio(loop_scope="module")
SERVICE = "conference.localhost"


async def muc_client(cluster: Cluster, node: str, name: str, *, new: bool = True) -> Client:
    """A client on `node` with the MUC, MAM and forms plugins; room presence and subjects queued too."""
    jid = await cluster.add_user(name) if new else f"{name}@localhost"
    client = await cluster.client(node, jid)
    for plugin in ("xep_0045", "xep_0313", "xep_0004"):
        client.register_plugin(plugin)
    client.add_event_handler("groupchat_presence", client.presences.put_nowait)
    client.add_event_handler("groupchat_subject", client.messages.put_nowait)
    client.add_event_handler("message_error", client.messages.put_nowait)
    client.add_event_handler("groupchat_config_status", client.messages.put_nowait)
    return client


async def join(client: Client, room: str, nick: str, *, history: int = 0) -> Any:
    pres, *_ = await client.plugin["xep_0045"].join_muc_wait(JID(room), nick, maxstanzas=history, timeout=10)
    return pres


def room_owner(cluster: Cluster, room: str) -> str:
    """The node running `room`, as `parlour cluster rooms` shows it."""
    status = parlour("cluster", "rooms", "--config", str(cluster.nodes["n2"].config))
    assert status.returncode == 0, status.stdout + status.stderr
    for line in status.stdout.splitlines():
        if line.startswith(room + " "):
            return line.split()[-1]
    raise AssertionError(f"{room} not listed:\n{status.stdout}")


async def until_unlisted(cluster: Cluster, room: str) -> None:
    """Wait (up to 10 s: the lease of an emptied room goes within a heartbeat, later on a loaded machine)
    until `parlour cluster rooms` no longer lists `room`."""
    async with asyncio.timeout(10):
        while True:
            try:
                room_owner(cluster, room)
            except AssertionError:
                return
            await asyncio.sleep(0.2)


async def test_a_room_with_occupants_on_three_nodes(cluster: Cluster) -> None:
    room = f"lounge@{SERVICE}"
    alice = await muc_client(cluster, "n1", "alice")
    bob = await muc_client(cluster, "n2", "bob")
    carol = await muc_client(cluster, "n3", "carol")
    await create_room(alice, room, "Alice", persistentroom=True, roomname="Lounge")
    assert room_owner(cluster, room) == "n1"  # the node that got the room's first stanza runs it
    await join(bob, room, "Bob")
    assert (await presence_from(alice, f"{room}/Bob"))["muc"]["role"] == "participant"
    await join(carol, room, "Carol")
    await presence_from(alice, f"{room}/Carol")
    await presence_from(bob, f"{room}/Carol")
    # Messages from each node reach every occupant, on every node.
    for sender, body in ((bob, "from n2"), (carol, "from n3"), (alice, "from n1")):
        sender.send_message(mto=room, mbody=body, mtype="groupchat")
        for client in (alice, bob, carol):
            assert (await groupchat(client, body=body))["from"] == JID(f"{room}/{sender.boundjid.user.title()}")
    # A late joiner on another node gets the history (kept by the owner, n1).
    dave = await muc_client(cluster, "n2", "dave")
    await join(dave, room, "Dave", history=10)
    got = [(await groupchat(dave))["body"] for _ in range(3)]
    assert got == ["from n2", "from n3", "from n1"]
    # Service discovery on n2, which does not run the room, lists it.
    items = await dave.plugin["xep_0030"].get_items(jid=SERVICE, timeout=10)
    assert (room, None, "Lounge") in items["disco_items"]["items"]
    # A configuration change made by an owner on n3: carol is made owner, renames the room.
    await alice.plugin["xep_0045"].set_affiliation(room, "owner", jid=carol.boundjid.bare)
    form = await carol.plugin["xep_0045"].get_room_config(room)
    assert form.get_fields()["muc#roomconfig_roomname"]["value"] == "Lounge"
    submit = carol.plugin["xep_0004"].make_form("submit")
    submit.add_field(var="muc#roomconfig_roomname", value="The Lounge")
    await carol.plugin["xep_0045"].set_room_config(room, submit)
    changed = await groupchat(bob)
    while 104 not in codes(changed):
        changed = await groupchat(bob)
    info = await bob.plugin["xep_0030"].get_info(jid=room, timeout=10)
    assert ("conference", "text", "The Lounge") in {(i[0], i[1], i[3]) for i in info["disco_info"]["identities"]}
    # bob leaves from n2: the others see it.
    bob.plugin["xep_0045"].leave_muc(room, "Bob")
    assert (await presence_from(carol, f"{room}/Bob", ptype="unavailable"))["type"] == "unavailable"


async def test_the_last_occupant_leaving_frees_the_room_for_any_node(cluster: Cluster) -> None:
    room = f"corridor@{SERVICE}"
    erin = await muc_client(cluster, "n2", "erin")
    await create_room(erin, room, "Erin", persistentroom=True)
    assert room_owner(cluster, room) == "n2"
    erin.send_message(mto=room, mbody="kept in the archive", mtype="groupchat")
    await groupchat(erin, body="kept in the archive")
    erin.plugin["xep_0045"].leave_muc(room, "Erin")
    await ping(erin)
    await until_unlisted(cluster, room)  # nobody in it: no node holds it
    frank = await muc_client(cluster, "n3", "frank")
    await join(frank, room, "Frank", history=5)  # loaded from the database by n3, erin still its owner
    assert room_owner(cluster, room) == "n3"
    assert (await groupchat(frank, body="kept in the archive"))["from"] == JID(f"{room}/Erin")  # the history
    members = await erin.plugin["xep_0045"].get_affiliation_list(room, "owner")
    assert [str(j) for j in members] == ["erin@localhost"]


async def test_a_room_that_moved_to_another_node_is_still_reached(cluster: Cluster) -> None:
    room = f"hall@{SERVICE}"
    wanda = await muc_client(cluster, "n1", "wanda")
    xavier = await muc_client(cluster, "n2", "xavier")
    await create_room(wanda, room, "Wanda", persistentroom=True)
    await join(xavier, room, "Xavier")
    for n in range(3):  # n2 forwards to n1, the owner it remembers after the first stanza
        xavier.send_message(mto=room, mbody=f"to n1 {n}", mtype="groupchat")
        await groupchat(wanda, body=f"to n1 {n}")
    for client, nick in ((xavier, "Xavier"), (wanda, "Wanda")):
        client.plugin["xep_0045"].leave_muc(room, nick)
        await ping(client)
    await until_unlisted(cluster, room)  # empty: the lease went
    yolanda = await muc_client(cluster, "n3", "yolanda")
    await join(yolanda, room, "Yolanda")
    assert room_owner(cluster, room) == "n3"
    await join(xavier, room, "Xavier")  # from n2, which last saw the room on n1
    xavier.send_message(mto=room, mbody="to n3", mtype="groupchat")
    assert (await groupchat(yolanda, body="to n3"))["from"] == JID(f"{room}/Xavier")
    assert room_owner(cluster, room) == "n3"


async def test_the_console_of_one_node_lists_and_destroys_a_room_another_node_runs(cluster: Cluster) -> None:
    room = f"attic@{SERVICE}"
    olga = await muc_client(cluster, "n2", "olga")
    pete = await muc_client(cluster, "n3", "pete")
    await create_room(olga, room, "Olga", persistentroom=True, roomname="Attic")
    await join(pete, room, "Pete")
    await cluster.add_user(ADMIN.split("@")[0])
    base = f"http://127.0.0.1:{cluster.nodes['n1'].http_port}"  # n1 runs no room
    async with http_session() as console:
        status, _page = await admin_login(console, base, ADMIN, PASSWORD)
        assert status == 200
        page = await (await console.get(f"{base}/admin/rooms")).text()
        row = page.split(room)[1].split("</tr>")[0]
        assert "<td>2</td>" in row and "<td>n2</td>" in row  # two occupants, run by n2
        destroyed = await console.post(f"{base}/admin/rooms/destroy", data={
            "csrf": csrf_of(page), "room": room, "reason": "spring cleaning", "confirmed": "yes"})
        assert f"Room {room} destroyed." in await destroyed.text()
    # n1 handed the change to n2, which runs the room: the occupants on n2 and n3 are told.
    for client in (olga, pete):
        gone = await presence_from(client, f"{room}/{client.boundjid.user.title()}", ptype="unavailable")
        assert gone.xml.find(f"{{{NS_USER}}}x/{{{NS_USER}}}destroy/{{{NS_USER}}}reason").text == "spring cleaning"
    with pytest.raises(AssertionError):
        room_owner(cluster, room)


async def test_kill_9_of_the_owner_node_hands_its_room_over_with_nothing_lost(cluster: Cluster) -> None:
    room = f"ops@{SERVICE}"
    gina = await muc_client(cluster, "n3", "gina")
    await create_room(gina, room, "Gina", persistentroom=True)
    hank = await muc_client(cluster, "n1", "hank")
    ivan = await muc_client(cluster, "n2", "ivan")
    await join(hank, room, "Hank")
    await join(ivan, room, "Ivan")
    await presence_from(hank, f"{room}/Ivan")
    assert room_owner(cluster, room) == "n3"
    side = f"ops-side@{SERVICE}"  # run by n1, which survives: gina (n3) leaves it like any dead session
    await create_room(hank, side, "Hank")
    await join(gina, side, "Gina")
    await cluster.kill("n3")
    # Each of these is acknowledged (the ping) once it is in n3's queue in Redis; n3 never reads them.
    bodies = [f"while n3 is dead {n}" for n in range(5)]
    for body in bodies:
        hank.send_message(mto=room, mbody=body, mtype="groupchat")
    await ping(hank)
    # Within seconds another node takes the room over, with hank and ivan still inside (their clients
    # notice nothing), and handles what was queued: ivan gets every message, in order.
    got = []
    while len(got) < len(bodies):
        message = await groupchat(ivan, timeout=EXPIRY * 6)
        if message["body"]:  # not the subject
            got.append(message["body"])
    assert got == bodies
    gone = await presence_from(ivan, f"{room}/Gina", ptype="unavailable", timeout=EXPIRY * 6)
    assert gone["type"] == "unavailable"  # gina's session died with n3
    assert (await presence_from(hank, f"{side}/Gina", ptype="unavailable", timeout=EXPIRY * 6))["type"] == "unavailable"
    assert room_owner(cluster, room) in ("n1", "n2")
    ivan.send_message(mto=room, mbody="after the takeover", mtype="groupchat")
    assert (await groupchat(hank, body="after the takeover"))["from"] == JID(f"{room}/Ivan")
    # gina reconnects to n1 and rejoins; the room's archive (MAM) holds every acknowledged message.
    gina2 = await muc_client(cluster, "n1", "gina", new=False)
    await join(gina2, room, "Gina")
    archived = []
    async for page in gina2.plugin["xep_0313"].retrieve(jid=JID(room), iterator=True, rsm={"max": 50}):
        archived += [m["mam_result"]["forwarded"]["stanza"]["body"] for m in page["mam"]["results"]]
    assert archived[-len(bodies) - 1:] == [*bodies, "after the takeover"]
    assert "took over room ops@conference.localhost" in (
        cluster.nodes["n1"].log + cluster.nodes["n2"].log)
    await cluster.start("n3")  # back for the next tests


async def test_a_clean_stop_of_the_owner_hands_its_room_on_with_its_occupants(cluster: Cluster) -> None:
    room = f"porch@{SERVICE}"
    sara = await muc_client(cluster, "n2", "sara")
    quinn = await muc_client(cluster, "n1", "quinn")
    rita = await muc_client(cluster, "n3", "rita")
    await create_room(sara, room, "Sara", persistentroom=True)
    await join(quinn, room, "Quinn")
    await join(rita, room, "Rita")
    await presence_from(quinn, f"{room}/Rita")
    assert room_owner(cluster, room) == "n2"
    await cluster.nodes["n2"].process.stop()  # SIGTERM: the lease goes, the occupancy record stays
    assert (await presence_from(rita, f"{room}/Sara", ptype="unavailable", timeout=EXPIRY * 6))["type"] == "unavailable"
    # quinn and rita were never told to leave: the next stanza makes another node run the room, with them
    quinn.send_message(mto=room, mbody="after the stop", mtype="groupchat")
    assert (await groupchat(rita, body="after the stop", timeout=EXPIRY * 2))["from"] == JID(f"{room}/Quinn")
    assert room_owner(cluster, room) in ("n1", "n3")
    await cluster.start("n2")  # back for the next tests


async def test_a_reload_of_the_owners_modules_hands_its_room_on_and_it_runs_rooms_again(cluster: Cluster) -> None:
    room, another = f"den@{SERVICE}", f"study@{SERVICE}"
    tobias = await muc_client(cluster, "n3", "tobias")
    ursula = await muc_client(cluster, "n1", "ursula")
    await create_room(tobias, room, "Tobias", persistentroom=True)
    await join(ursula, room, "Ursula")
    await presence_from(tobias, f"{room}/Ursula")
    assert room_owner(cluster, room) == "n3"
    # New chat and caps modules on n3: its room goes as at a clean stop, the occupants stay recorded.
    await cluster.reload_modules("n3", "[modules.muc]\nmax_history = 99\n")
    assert "already served" not in cluster.nodes["n3"].log
    ursula.send_message(mto=room, mbody="after the reload", mtype="groupchat")
    assert (await groupchat(tobias, body="after the reload", timeout=EXPIRY * 2))["from"] == JID(f"{room}/Ursula")
    tobias.send_message(mto=room, mbody="still here", mtype="groupchat")
    assert (await groupchat(ursula, body="still here"))["from"] == JID(f"{room}/Tobias")
    # The new chat service of n3 is behind the leases too: a room created there is n3's, reached from n1.
    await create_room(tobias, another, "Tobias", persistentroom=True)
    assert room_owner(cluster, another) == "n3"
    await join(ursula, another, "Ursula")
    assert (await presence_from(tobias, f"{another}/Ursula"))["muc"]["role"] == "participant"


async def test_rooms_keep_working_across_a_redis_restart(cluster: Cluster, redis_server: RedisServer) -> None:
    room = f"kitchen@{SERVICE}"
    jane = await muc_client(cluster, "n1", "jane")
    kim = await muc_client(cluster, "n3", "kim")
    await create_room(jane, room, "Jane", persistentroom=True)
    await join(kim, room, "Kim")
    redis_server.restart(empty=False)
    for attempt in range(40):
        kim.send_message(mto=room, mbody=f"after the restart {attempt}", mtype="groupchat")
        with contextlib.suppress(TimeoutError):
            while not (await groupchat(jane, timeout=0.5))["body"].startswith("after the restart"):
                pass  # the subject, from jane's join
            break
    else:
        raise AssertionError("no room message across nodes after Redis restarted")
    # Both are still occupants: a message from jane reaches kim, no error comes back.
    jane.send_message(mto=room, mbody="still in", mtype="groupchat")
    assert (await groupchat(kim, body="still in"))["from"] == JID(f"{room}/Jane")
