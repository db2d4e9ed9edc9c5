"""What administrators see of live federation: `parlour federation status` (the real command line, asking
the running server over its control socket), the console's Federation page, the JSON API and /metrics,
all showing the same connections between a server set up like `parlour setup` does (localhost) and a
second Parlour (b.test) after their users chatted both ways."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from appliance.app import Parlour
from tests.integration.federated import chat_both_ways, s2s_route, start_server
from tests.integration.harness import Harness, free_port
from tests.web.console_helpers import admin_login, configured_config, http_session
from tests.web.test_api import api  # noqa: F401 (fixture)
from tests.web.test_metrics import scrape


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    port_b = free_port()
    config = await configured_config(tmp_path / "a", federation=True)
    config = replace(config, s2s=replace(config.s2s, static_routes=(f"b.test=127.0.0.1:{port_b}",)))
    server = Parlour(config)
    await server.start()
    a = Harness(server)
    b = await start_server(tmp_path / "b", "b.test", s2s_route(port_b, "localhost", config.s2s.port))
    try:
        await chat_both_ways(a, b)
        yield a, b
    finally:
        await a.close()
        await b.close()


@pytest.fixture
def server(pair: tuple[Harness, Harness]) -> Harness:
    return pair[0]


def parlour(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)


async def test_status_on_the_command_line_the_console_the_api_and_metrics(
    server: Harness, api: tuple[aiohttp.ClientSession, str]  # noqa: F811
) -> None:
    path = server.server.config.source
    assert path is not None

    shown = await asyncio.to_thread(parlour, "federation", "status", config=path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("federation: on; ")
    assert lines[1].split() == ["DOMAIN", "DIR", "STATE", "TLS", "AUTH", "BIDI", "SM", "QUEUED", "IN", "OUT",
                                "SINCE"]
    out = next(line.split() for line in lines if line.startswith("b.test") and " out " in line)
    assert out[1:7] == ["out", "connected", "TLSv1.3", "dialback", "yes", "yes"] and out[8:10] == ["0", "1"]
    assert any(line.startswith("since start: ") and "stanzas out 1" in line for line in lines)
    as_json = await asyncio.to_thread(parlour, "federation", "status", "--json", config=path)
    status = json.loads(as_json.stdout)
    links = {(link["domain"], link["direction"]) for link in status["links"]}
    assert ("b.test", "out") in links and status["enabled"] is True

    session, url = api
    body = await (await session.get(f"{url}/federation/connections")).json()
    [api_out] = [link for link in body["connections"] if link["direction"] == "out"]
    assert api_out["domain"] == "b.test" and api_out["auth"] == "dialback" and api_out["stanzas_out"] == 1
    assert body["counters"]["stanzas_out"] == 1 and body["counters"]["connections_out"] >= 1

    base = f"http://127.0.0.1:{server.http_port}"
    async with http_session() as console:
        await admin_login(console, base)
        html = await (await console.get(f"{base}/admin/federation")).text()
    assert "Connections to other servers" in html
    rows = [row for row in html.split('<tr class="s2s-link">')[1:]]
    assert any("<td>b.test</td>" in row and "outgoing" in row and "dialback" in row and "TLSv1.3" in row
               for row in rows)

    metrics = await scrape(server)
    assert metrics['parlour_s2s_connections{direction="out"}'] == 1
    assert metrics['parlour_s2s_stanzas_total{direction="out"}'] == 1
    assert metrics['parlour_s2s_stanzas_total{direction="in"}'] == 1
    assert metrics["parlour_s2s_queued_stanzas"] == 0 and metrics["parlour_s2s_bounces_total"] == 0


async def test_status_without_a_running_server(tmp_path: Path) -> None:
    config = await configured_config(tmp_path, federation=True)
    assert config.source is not None
    done = await asyncio.to_thread(parlour, "federation", "status", config=config.source)
    assert done.returncode == 1 and "no running server answers at" in done.stderr
