"""The dashboard and the API say when apt has a newer Parlour (the VM image's update path), and how to
install it; the answer comes from the cached background check, never from the page request."""

from __future__ import annotations

from pathlib import Path

from appliance.app import Parlour
from appliance.platform.updates import APPLY, UpdateCheck
from tests.integration.harness import Harness
from tests.platform.apt_fixture import apt_root
from tests.web.console_helpers import admin_login, configured_config, http_session

NOTICE = "An update is available: Parlour 0.2.0 (installed: 0.1.0)."


async def test_dashboard_shows_the_available_update_and_how_to_install_it(tmp_path: Path) -> None:
    updates = UpdateCheck(apt_options=apt_root(tmp_path / "newer", installed="0.1.0", available="0.2.0"))
    server = Parlour(await configured_config(tmp_path), updates=updates)
    await server.start()
    h = Harness(server)
    base = f"http://127.0.0.1:{h.http_port}"
    try:
        await updates.refresh()  # the check the server started in the background
        async with http_session() as s:
            status, _ = await admin_login(s, base)
            assert status == 200
            page = await (await s.get(f"{base}/admin/")).text()
            assert NOTICE in page
            assert f"<code>{APPLY.replace('&', '&amp;')}</code>" in page

            # Once the package is current (the lists now have the installed version), the notice goes.
            updates.apt_options = apt_root(tmp_path / "current", installed="0.2.0", available="0.2.0")
            await updates.refresh()
            page = await (await s.get(f"{base}/admin/")).text()
            assert "An update is available" not in page
            assert "Dashboard" in page
    finally:
        await h.close()
