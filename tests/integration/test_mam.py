"""Message Archive Management (XEP-0313) over real sockets: 500 messages paged both ways, filters,
preferences, errors and the retention purge."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

from appliance.modules.mam import MamOptions
from tests.integration.harness import Client, Harness, start_harness
from tests.integration.stanzas import condition, iq, iq_error, raw_messages, send_message

MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
FORWARD = "urn:xmpp:forward:0"


def form(**fields: str | list[str]) -> str:
    parts = [f"<field var='FORM_TYPE' type='hidden'><value>{MAM}</value></field>"]
    for name, value in fields.items():
        values = value if isinstance(value, list) else [value]
        inner = "".join(f"<value>{v}</value>" for v in values)
        parts.append(f"<field var='{name.replace('_', '-')}'>{inner}</field>")
    return f"<x xmlns='jabber:x:data' type='submit'>{''.join(parts)}</x>"


async def query(
    client: Client, results: asyncio.Queue[ET.Element], *, rsm: str = "", x: str = "", extra: str = ""
) -> tuple[list[tuple[str, str]], ET.Element]:
    """Run one query; returns [(archive id, body)] in the order received and the <fin/>."""
    payload = f"<query xmlns='{MAM}' queryid='q1'>{x}<set xmlns='{RSM}'>{rsm}</set>{extra}</query>"
    reply = await iq(client, "set", payload)
    fin = reply.find(f"{{{MAM}}}fin")
    assert fin is not None and fin.get("queryid") == "q1"
    found = []
    while not results.empty():
        msg = results.get_nowait()
        result = msg.find(f"{{{MAM}}}result")
        if result is None:
            continue
        assert result.get("queryid") == "q1"
        inner = result.find(f"{{{FORWARD}}}forwarded/{{jabber:client}}message")
        found.append((result.get("id"), inner.findtext("{jabber:client}body")))
    return found, fin


def rsm_of(fin: ET.Element) -> tuple[str | None, str | None, int, bool]:
    rsm = fin.find(f"{{{RSM}}}set")
    return (rsm.findtext(f"{{{RSM}}}first"), rsm.findtext(f"{{{RSM}}}last"), int(rsm.findtext(f"{{{RSM}}}count")),
            fin.get("complete") == "true")


async def chat(harness: Harness, count: int) -> tuple[str, str, Client, Client]:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    a, b = await harness.client(alice), await harness.client(bob)
    for i in range(count):
        send_message(a, bob, f"m{i:03d}")
    for _ in range(count):  # delivered means archived: the archive write precedes delivery
        await b.next_message()
    return alice, bob, a, b


async def test_features_on_the_account(harness: Harness) -> None:
    alice = await harness.user("alice")
    client = await harness.client(alice)
    info = await client.plugin["xep_0030"].get_info(alice)
    features = info["disco_info"]["features"]
    assert {MAM, f"{MAM}#extended", "urn:xmpp:sid:0"} <= set(features)


async def test_page_through_500_messages_both_ways(harness: Harness) -> None:
    _alice, _bob, a, b = await chat(harness, 500)
    results = raw_messages(b)
    seen: list[tuple[str, str]] = []
    after = ""
    while True:
        page, fin = await query(b, results, rsm=f"<max>75</max>{after}")
        first, last, count, complete = rsm_of(fin)
        assert count == 500 and len(page) == min(75, 500 - len(seen))
        assert first == page[0][0] and last == page[-1][0]
        seen += page
        if complete:
            break
        after = f"<after>{last}</after>"
    assert [body for _id, body in seen] == [f"m{i:03d}" for i in range(500)]
    assert len({archive_id for archive_id, _ in seen}) == 500

    backwards: list[tuple[str, str]] = []
    before = "<before/>"
    while True:
        page, fin = await query(b, results, rsm=f"<max>120</max>{before}")
        first, _last, count, complete = rsm_of(fin)
        backwards = page + backwards
        index = int(fin.find(f"{{{RSM}}}set/{{{RSM}}}first").get("index"))
        assert index == 500 - len(backwards)
        if complete:
            break
        before = f"<before>{first}</before>"
    assert backwards == seen

    # the sender's archive holds the same conversation under its own ids
    sender_results = raw_messages(a)
    page, fin = await query(a, sender_results, rsm="<max>10</max><before/>")
    assert [body for _i, body in page] == [f"m{i:03d}" for i in range(490, 500)]
    assert not {i for i, _ in page} & {i for i, _ in seen}

    # flip-page: the same last page, newest first
    flipped, _fin = await query(b, results, rsm="<max>5</max><before/>", extra="<flip-page/>")
    assert [body for _i, body in flipped] == [f"m{i:03d}" for i in range(499, 494, -1)]


async def test_filters(harness: Harness) -> None:
    alice, bob, _a, b = await chat(harness, 20)
    carol = await harness.user("carol")
    c = await harness.client(carol)
    send_message(c, bob, "from carol")
    await b.next_message()
    results = raw_messages(b)
    everything, _ = await query(b, results, rsm="<max>100</max>")
    ids = [i for i, _ in everything]
    assert len(ids) == 21

    with_carol, fin = await query(b, results, x=form(**{"with": carol}))
    assert [body for _i, body in with_carol] == ["from carol"] and rsm_of(fin)[2] == 1
    with_alice, fin = await query(b, results, x=form(**{"with": alice}), rsm="<max>100</max>")
    assert len(with_alice) == 20

    window, _ = await query(b, results, x=form(after_id=ids[4], before_id=ids[8]))
    assert [i for i, _ in window] == ids[5:8]
    chosen, _ = await query(b, results, x=form(ids=[ids[2], ids[17]]))
    assert [i for i, _ in chosen] == [ids[2], ids[17]]

    future, fin = await query(b, results, x=form(start="2999-01-01T00:00:00Z"))
    assert future == [] and rsm_of(fin)[2] == 0 and rsm_of(fin)[3]
    past, _ = await query(b, results, x=form(end="2000-01-01T00:00:00Z"))
    assert past == []
    recent, _ = await query(b, results, x=form(start="2000-01-01T00:00:00Z"), rsm="<max>100</max>")
    assert len(recent) == 21


async def test_errors(harness: Harness) -> None:
    _alice, _bob, _a, b = await chat(harness, 3)
    unknown_rsm = await iq_error(b, "set", f"<query xmlns='{MAM}'><set xmlns='{RSM}'><after>nope</after></set></query>")
    assert condition(unknown_rsm) == "item-not-found"
    unknown_id = await iq_error(b, "set", f"<query xmlns='{MAM}'>{form(after_id='nope')}</query>")
    assert condition(unknown_id) == "item-not-found"
    bad_field = await iq_error(b, "set", f"<query xmlns='{MAM}'>{form(colour='red')}</query>")
    assert condition(bad_field) == "bad-request"
    bad_date = await iq_error(b, "set", f"<query xmlns='{MAM}'>{form(start='yesterday')}</query>")
    assert condition(bad_date) == "bad-request"
    other = await iq_error(b, "set", f"<query xmlns='{MAM}'/>", to=f"alice@{harness.domain}")
    assert condition(other) in ("forbidden", "service-unavailable")
    fields = await iq(b, "get", f"<query xmlns='{MAM}'/>")
    names = {f.get("var") for f in fields.iter("{jabber:x:data}field")}
    assert {"with", "start", "end", "before-id", "after-id", "ids"} <= names


async def test_preferences(harness: Harness) -> None:
    alice, bob = await harness.user("alice"), await harness.user("bob")
    carol = await harness.user("carol")
    a, b, c = await harness.client(alice), await harness.client(bob), await harness.client(carol)
    prefs = await iq(b, "get", f"<prefs xmlns='{MAM}'/>")
    assert prefs.find(f"{{{MAM}}}prefs").get("default") == "always"
    await iq(b, "set", f"<prefs xmlns='{MAM}' default='never'><always><jid>{carol}</jid></always><never/></prefs>")
    send_message(a, bob, "not archived")
    send_message(c, bob, "archived: carol is always")
    await b.next_message()
    await b.next_message()
    results = raw_messages(b)
    page, _ = await query(b, results)
    assert [body for _i, body in page] == ["archived: carol is always"]
    stored = await iq(b, "get", f"<prefs xmlns='{MAM}'/>")
    assert stored.find(f"{{{MAM}}}prefs").get("default") == "never"
    assert [j.text for j in stored.iter(f"{{{MAM}}}jid")] == [carol]

    # metadata names the first and last archived message
    meta = (await iq(b, "get", f"<metadata xmlns='{MAM}'/>")).find(f"{{{MAM}}}metadata")
    assert meta.find(f"{{{MAM}}}start").get("id") == page[0][0] == meta.find(f"{{{MAM}}}end").get("id")


async def test_stanza_id_reaches_the_recipient(harness: Harness) -> None:
    _alice, bob, _a, b = await chat(harness, 1)
    results = raw_messages(b)
    page, _ = await query(b, results)
    # chat() consumed the live copy; send one more and compare its stanza-id with the archive
    a = harness.clients[0]
    send_message(a, bob, "live")
    live = (await b.next_message()).xml
    ids = {s.get("by"): s.get("id") for s in live.iter("{urn:xmpp:sid:0}stanza-id")}
    page, _ = await query(b, results, rsm="<max>1</max><before/>")
    assert ids[bob] == page[0][0]
    assert list(ids) == [bob], "the sender's archive id stays with the sender"


async def test_retention_purges_old_messages(tmp_path: Path) -> None:
    harness = await start_harness(tmp_path)
    host = harness.server.config.hosts[0]
    await harness.close()
    mam = replace(host.modules.of(MamOptions), retention=1.0, purge_interval=1.0)
    short = replace(host, modules=host.modules.with_options(mam))
    harness = await start_harness(tmp_path / "short", hosts=(short,))
    try:
        _alice, _bob, _a, b = await chat(harness, 5)
        results = raw_messages(b)
        for _ in range(100):
            page, fin = await query(b, results)
            if rsm_of(fin)[2] == 0:
                break
            await asyncio.sleep(0.2)
        assert page == [] and rsm_of(fin)[2] == 0
    finally:
        await harness.close()
