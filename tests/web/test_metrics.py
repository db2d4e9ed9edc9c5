"""/metrics in the Prometheus text format, scraped over HTTP while real clients chat."""

from __future__ import annotations

import re

import aiohttp
import pytest

from tests.integration.harness import Harness


@pytest.fixture
def server(console_server: Harness) -> Harness:
    return console_server


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def scrape(h: Harness) -> dict[str, float]:
    async with aiohttp.ClientSession() as s:
        r = await s.get(f"http://127.0.0.1:{h.http_port}/metrics")
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    for line in text.splitlines():  # every sample has its HELP and TYPE
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)[0]  # type: ignore[index]
            assert f"# TYPE {name} " in text
    return samples(text)


async def test_metrics_follow_sessions_stanzas_and_failures(server: Harness) -> None:
    before = await scrape(server)
    assert before['parlour_sessions{host="localhost"}'] == 0
    assert before['parlour_accounts{host="localhost"}'] == 1
    assert before["parlour_database_size_bytes"] > 0
    alice = await server.client(await server.user("alice"))
    bob_jid = await server.user("bob")
    bob = await server.client(bob_jid)
    alice.send_message(mto=bob_jid, mbody="hi", mtype="chat")
    await bob.next_message()
    from tests.integration.harness import Client

    wrong = Client("alice@localhost/x", "wrong password", server.ca_file)
    wrong.connect(host="127.0.0.1", port=server.port)
    await __import__("asyncio").wait_for(wrong.auth_failed.wait(), 10)
    wrong.disconnect()
    after = await scrape(server)
    assert after['parlour_sessions{host="localhost"}'] == 2
    assert after["parlour_messages_in_total"] >= before["parlour_messages_in_total"] + 1
    assert after["parlour_stanzas_in_total"] > before["parlour_stanzas_in_total"]
    assert after["parlour_stanzas_out_total"] > before["parlour_stanzas_out_total"]
    assert after["parlour_auth_failures_total"] == before["parlour_auth_failures_total"] + 1
    assert any(name.startswith("parlour_certificate_expiry_timestamp_seconds") for name in after)


async def test_database_size_on_postgresql_is_its_pg_database_size(tmp_path, postgres) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL there is no file in the state folder to measure: the dashboard, the API and /metrics
    show pg_database_size (it was 0 before)."""
    import psycopg

    from appliance.app import Parlour
    from appliance.config.model import StorageConfig
    from tests.integration.harness import make_config

    url = postgres.create_database()
    server = Parlour(make_config(tmp_path / "state", storage=StorageConfig(url=url)))
    await server.start()
    h = Harness(server)
    try:
        await h.user("alice")
        shown = (await scrape(h))["parlour_database_size_bytes"]
        assert server.services is not None
        status = await server.services.status.status()
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row is not None and shown > 1_000_000 and status.database_size > 1_000_000
        assert abs(shown - row[0]) < row[0] * 0.1 and abs(status.database_size - row[0]) < row[0] * 0.1
        assert not (tmp_path / "state" / "parlour.db").exists()
    finally:
        await h.close()
