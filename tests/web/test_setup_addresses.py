"""Setup mode on a machine whose network comes up after Parlour (a VM booting on a slow host, DHCP late):
the wizard's URL is announced again with the LAN address once there is one, and again if it changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from appliance.app.setup import SetupMode
from tests.web.console_helpers import http_session


async def test_the_wizard_url_is_announced_again_when_the_address_arrives_or_changes(tmp_path: Path) -> None:
    addresses: list[str] = []  # no DHCP answer yet
    mode = SetupMode(config_path=tmp_path / "parlour.toml", state_dir=tmp_path / "state", port=0,
                     interfaces=("0.0.0.0",), lan=lambda: list(addresses))
    announced: asyncio.Queue[list[str]] = asyncio.Queue()
    first = await mode.start()
    watching = asyncio.ensure_future(mode.announce_new_addresses(announced.put_nowait, interval=0.05))
    try:
        token = mode.token.value
        assert first == [f"http://127.0.0.1:{mode.port}/setup?token={token}"]  # nothing better yet
        await asyncio.sleep(0.2)
        assert announced.empty()  # nothing changed, nothing said

        addresses.append("192.0.2.10")  # DHCP answered
        assert await asyncio.wait_for(announced.get(), 5) == [f"http://192.0.2.10:{mode.port}/setup?token={token}"]
        addresses[:] = ["192.0.2.77"]  # a new lease with another address
        assert await asyncio.wait_for(announced.get(), 5) == [f"http://192.0.2.77:{mode.port}/setup?token={token}"]
        assert mode.urls == [f"http://192.0.2.77:{mode.port}/setup?token={token}"]
        # The wizard itself answers on every interface all along.
        async with http_session() as http:
            response = await http.get(f"http://127.0.0.1:{mode.port}/setup?token={token}", allow_redirects=True)
            assert response.status == 200
    finally:
        watching.cancel()
        await mode.stop()


async def test_announcing_stops_when_setup_completes(tmp_path: Path) -> None:
    addresses: list[str] = []
    mode = SetupMode(config_path=tmp_path / "parlour.toml", state_dir=tmp_path / "state", port=0,
                     interfaces=("0.0.0.0",), lan=lambda: list(addresses))
    await mode.start()
    try:
        mode.switched.set()  # as when the wizard finished and the server runs
        addresses.append("192.0.2.10")
        said: list[list[str]] = []
        await asyncio.wait_for(mode.announce_new_addresses(said.append, interval=0.05), 5)
        assert said == []
    finally:
        await mode.stop()
