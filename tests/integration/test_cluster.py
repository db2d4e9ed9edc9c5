"""Three Parlour nodes (separate processes) on one real PostgreSQL and one real Redis, clients on different
nodes: chat, presence, carbons and offline messages across nodes; kill -9 of a node; Redis restarted."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio

from tests.integration.cluster_nodes import (
    ADMIN,
    EXPIRY,
    PASSWORD,
    Cluster,
    ping,
    running_cluster,
    subscribe_both,
)
from tests.integration.process import parlour
from tests.integration.stanzas import iq, next_raw, raw_messages
from tests.integration.test_carbons import CARBONS, copied
from tests.integration.test_stream_management import Phone, send_numbered, until
from tests.pgserver import PostgresServer, postgres_for_tests
from tests.redisserver import RedisServer
from tests.web.console_helpers import admin_login, csrf_of, http_session

pytestmark = pytest.mark.asyncio(loop_scope="module")
NODES = ("n1", "n2", "n3")


@pytest.fixture(scope="module")
def database() -> Iterator[PostgresServer]:
    """The cluster's own PostgreSQL (one test takes it away for a while)."""
    with postgres_for_tests() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory, database: PostgresServer,
                  redis_server: RedisServer) -> AsyncIterator[Cluster]:
    folder = tmp_path_factory.mktemp("cluster")
    redis_server.restart(empty=True)  # nothing left by other tests
    async with running_cluster(folder, database.create_database(), redis_server.url, NODES) as running:
        yield running


@pytest.fixture(autouse=True)
def _clients_closed(cluster: Cluster) -> Iterator[None]:
    yield
    cluster.close_clients()


async def test_chat_and_presence_between_users_on_different_nodes(cluster: Cluster) -> None:
    alice, bob = await cluster.add_user("alice"), await cluster.add_user("bob")
    a = await cluster.client("n1", alice)
    b = await cluster.client("n2", bob)
    await subscribe_both(a, alice, b, bob)  # subscription requests and answers cross nodes
    a.send_message(mto=bob, mbody="hello from n1", mtype="chat")
    assert (await b.next_message())["body"] == "hello from n1"
    b.send_message(mto=f"{alice}/test", mbody="hello from n2", mtype="chat")
    assert (await a.next_message())["body"] == "hello from n2"
    # bob's second resource on n3 comes online: alice (n1) sees it, and it gets alice's presence (probe)
    b3 = await cluster.client("n3", bob, resource="third")
    seen = await a.next_presence(ptype="available")
    while str(seen["from"]) != f"{bob}/third":
        seen = await a.next_presence(ptype="available")
    probed = await b3.next_presence(ptype="available")
    while str(probed["from"]) != f"{alice}/test":
        probed = await b3.next_presence(ptype="available")
    # bob's n3 resource leaves: alice sees it go
    b3.disconnect()
    gone = await a.next_presence(ptype="unavailable")
    assert str(gone["from"]) == f"{bob}/third"


async def test_cluster_status_lists_every_node_with_its_sessions(cluster: Cluster) -> None:
    olga = await cluster.add_user("olga")
    await cluster.client("n2", olga)
    await asyncio.sleep(0.3)
    status = parlour("cluster", "status", "--config", str(cluster.nodes["n3"].config))
    assert status.returncode == 0, status.stdout + status.stderr
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:-1]}
    assert set(rows) == {"n1", "n2", "n3"} and all(row[1] == "up" for row in rows.values())
    assert int(rows["n2"][2]) >= 1
    assert "3 of 3 nodes alive" in status.stdout


async def test_console_and_api_list_the_nodes(cluster: Cluster) -> None:
    await cluster.add_user(ADMIN.split("@")[0])
    base = f"http://127.0.0.1:{cluster.nodes['n1'].http_port}"
    async with http_session() as console:
        status, _page = await admin_login(console, base, ADMIN, PASSWORD)
        assert status == 200
        page = await (await console.get(f"{base}/admin")).text()
        assert "Cluster nodes" in page and "n1 (this node)" in page and "<td>n2</td>" in page
        tokens = await console.get(f"{base}/admin/tokens")
        made = await console.post(f"{base}/admin/tokens", data={"csrf": csrf_of(await tokens.text()), "label": "t"})
        token = (await made.text()).split('id="new-token"')[0].rsplit('value="', 1)[1].split('"')[0]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as api:
        body = await (await api.get(f"{base}/api/v1/cluster")).json()
    assert body["enabled"] is True
    assert {n["name"]: (n["alive"], n["this"]) for n in body["nodes"]} == {
        "n1": (True, True), "n2": (True, False), "n3": (True, False)}


async def test_message_to_bare_jid_goes_to_highest_priority_resource_on_another_node(cluster: Cluster) -> None:
    carol, dave = await cluster.add_user("carol"), await cluster.add_user("dave")
    low = await cluster.client("n1", carol, resource="low")
    high = await cluster.client("n3", carol, resource="high", presence=False)
    high.send_presence(ppriority=10)
    await ping(high)
    await asyncio.sleep(0.3)  # the registry change reaches n2
    d = await cluster.client("n2", dave)
    d.send_message(mto=carol, mbody="to the best resource", mtype="chat")
    assert (await high.next_message())["body"] == "to the best resource"
    assert low.messages.empty()


async def test_carbons_reach_a_resource_on_another_node(cluster: Cluster) -> None:
    erin, frank = await cluster.add_user("erin"), await cluster.add_user("frank")
    phone = await cluster.client("n1", erin, resource="phone")
    laptop = await cluster.client("n2", erin, resource="laptop")
    for client in (phone, laptop):
        await iq(client, "set", f"<enable xmlns='{CARBONS}'/>")
    laptop_raw = raw_messages(laptop)
    await asyncio.sleep(0.3)  # the carbons flag reaches the other nodes with the session's record
    f = await cluster.client("n3", frank)
    phone.send_message(mto=frank, mbody="sent from the phone", mtype="chat")
    assert (await f.next_message())["body"] == "sent from the phone"
    sent = copied(await next_raw(laptop_raw), "sent")
    assert sent is not None and sent.findtext("{jabber:client}body") == "sent from the phone"


async def test_offline_message_stored_on_one_node_is_delivered_by_another(cluster: Cluster) -> None:
    gina, hank = await cluster.add_user("gina"), await cluster.add_user("hank")
    g = await cluster.client("n1", gina)
    g.send_message(mto=hank, mbody="while you were away", mtype="chat")
    await ping(g)
    h = await cluster.client("n3", hank)
    assert (await h.next_message())["body"] == "while you were away"


async def test_a_client_that_resumes_on_another_node_falls_back_cleanly_with_nothing_lost(cluster: Cluster) -> None:
    pat, quinn = await cluster.add_user("pat"), await cluster.add_user("quinn")
    q = await cluster.client("n2", quinn)
    phone = Phone(f"{pat}/phone", cluster.nodes["n1"].ca_file)
    cluster.clients.append(phone)
    phone.connect(host="127.0.0.1", port=cluster.nodes["n1"].port)
    await asyncio.wait_for(phone.started.wait(), 15)
    await until(lambda: phone.sm.sm_id is not None, "stream management enabled")
    phone.send_presence()
    await ping(phone)
    await asyncio.sleep(0.3)  # n2 sees the phone available
    full = str(phone.boundjid)
    first = await send_numbered(q, full, range(1, 4))
    await until(lambda: len(phone.bodies) == 3, "the first messages arrived")
    phone.sm.send_ack()
    await ping(phone)
    phone.drop()  # n1 keeps the session for resumption and queues what comes meanwhile
    later = await send_numbered(q, full, range(4, 10))
    await ping(q)
    # The phone comes back through another node: n3 does not know its stream, the resumption fails, it
    # binds the same resource afresh; n1 ends the old session and hands its unacknowledged messages on.
    phone.ssl_context = ssl.create_default_context(cafile=str(cluster.nodes["n3"].ca_file))
    phone.started.clear()
    phone.connect(host="127.0.0.1", port=cluster.nodes["n3"].port)
    await asyncio.wait_for(phone.started.wait(), 15)
    phone.send_presence()  # what n1 handed on waits offline for the new session's initial presence
    try:
        await until(lambda: phone.bodies[3:] == later, "the unacknowledged messages arrived on the new session")
    except TimeoutError:
        raise AssertionError(phone.bodies) from None
    assert phone.bodies[:3] == first and not phone.resumed.is_set()
    await asyncio.sleep(0.3)  # a duplicate would arrive in this time
    assert phone.bodies == first + later


async def test_postgresql_away_for_a_while_gives_clear_errors_and_recovers(cluster: Cluster,
                                                                           database: PostgresServer) -> None:
    rose, sam, tina = [await cluster.add_user(name) for name in ("rose", "sam", "tina")]
    r = await cluster.client("n1", rose)
    s = await cluster.client("n2", sam)
    database.stop()
    try:
        # Chat between online users needs no database: it crosses nodes through Redis.
        r.send_message(mto=sam, mbody="while the database is away", mtype="chat")
        assert (await s.next_message())["body"] == "while the database is away"
        # A message for an offline user cannot be stored: the sender is told, nothing is taken silently.
        r.send_message(mto=tina, mbody="cannot be kept now", mtype="chat")
        error = await r.next_message(timeout=15)
        assert error["type"] == "error" and error["error"]["condition"] == "service-unavailable"
    finally:
        database.start()
    # The nodes reconnect by themselves: the next offline message is stored and delivered at login.
    r.send_message(mto=tina, mbody="kept after the outage", mtype="chat")
    await ping(r)
    t = await cluster.client("n3", tina)
    assert (await t.next_message())["body"] == "kept after the outage"
    log = cluster.nodes["n1"].log  # the outage is logged, with the reason
    assert "handler Message.on_bare failed" in log and "psycopg.OperationalError: connection failed" in log


async def test_redis_away_longer_than_the_expiry_ends_no_session(cluster: Cluster,
                                                                 redis_server: RedisServer) -> None:
    uma, vic = await cluster.add_user("uma"), await cluster.add_user("vic")
    u = await cluster.client("n1", uma)
    v = await cluster.client("n2", vic)
    await subscribe_both(u, uma, v, vic)
    redis_server.stop()
    await asyncio.sleep(EXPIRY * 1.5)  # every node's alive key expires meanwhile
    redis_server.start()
    await asyncio.sleep(EXPIRY * 1.5)  # long enough for a node to wrongly declare the others dead
    for attempt in range(40):
        u.send_message(mto=vic, mbody=f"still here {attempt}", mtype="chat")
        with contextlib.suppress(TimeoutError):
            assert (await v.next_message(timeout=0.5))["body"].startswith("still here")
            break
    else:
        raise AssertionError("no message across nodes after Redis came back")
    while not v.presences.empty():  # nobody was told that uma went away
        presence = v.presences.get_nowait()
        assert not (presence["type"] == "unavailable" and str(presence["from"]) == f"{uma}/test"), presence
    assert u.is_connected() and v.is_connected()


@pytest.mark.parametrize("empty", [False, True], ids=["with-its-data", "empty"])
async def test_the_cluster_recovers_from_a_redis_restart(cluster: Cluster, redis_server: RedisServer,
                                                         empty: bool) -> None:
    lena, mike = await cluster.add_user(f"lena{int(empty)}"), await cluster.add_user(f"mike{int(empty)}")
    m = await cluster.client("n2", mike)
    lena_client = await cluster.client("n1", lena)
    redis_server.restart(empty=empty)
    # Nobody steps in: the nodes reconnect, and (when Redis lost everything) register their sessions again.
    for attempt in range(40):
        lena_client.send_message(mto=mike, mbody=f"after the restart {attempt}", mtype="chat")
        with contextlib.suppress(TimeoutError):
            message = await m.next_message(timeout=0.5)
            assert message["body"].startswith("after the restart")
            break
    else:
        raise AssertionError("no message across nodes after Redis restarted")
    later = await cluster.client("n3", await cluster.add_user(f"nora{int(empty)}"))  # a login after it
    await asyncio.sleep(0.5)
    m.send_message(mto=f"nora{int(empty)}@localhost/test", mbody="welcome", mtype="chat")
    assert (await later.next_message())["body"] == "welcome"


async def test_kill_9_of_a_node_ends_its_sessions_and_loses_no_acknowledged_message(cluster: Cluster) -> None:
    ivy, jack = await cluster.add_user("ivy"), await cluster.add_user("jack")
    i = await cluster.client("n3", ivy)
    j = await cluster.client("n1", jack)
    await subscribe_both(i, ivy, j, jack)
    await cluster.kill("n3")
    # Until n3's heartbeat expires jack's node still routes to ivy's session there, into n3's queue in
    # Redis: each message is acknowledged (the ping) once it is in that queue.
    bodies = [f"while n3 is dead {n}" for n in range(20)]
    for body in bodies:
        j.send_message(mto=ivy, mbody=body, mtype="chat")
    await ping(j)
    # The survivors notice within the expiry: jack sees ivy go unavailable.
    gone = await j.next_presence(ptype="unavailable", timeout=EXPIRY * 6)
    assert str(gone["from"]) == f"{ivy}/test"
    # ivy's client reconnects to another node and gets every message, in order (redelivered from n3's
    # queue into offline storage by the node that reaped n3).
    i2 = await cluster.client("n2", ivy)
    got = [(await i2.next_message())["body"] for _ in bodies]
    assert got == bodies
    assert "node n3 is gone" in cluster.nodes["n1"].log + cluster.nodes["n2"].log
    status = parlour("cluster", "status", "--config", str(cluster.nodes["n1"].config))
    assert status.returncode == 0, status.stdout + status.stderr  # every registered node is alive
    assert "n3" not in status.stdout and "2 of 2 nodes alive" in status.stdout
    await cluster.start("n3")  # back for the next tests
    k = await cluster.client("n3", await cluster.add_user("kim"))
    k.send_message(mto=jack, mbody="n3 is back", mtype="chat")
    assert (await j.next_message())["body"] == "n3 is back"
