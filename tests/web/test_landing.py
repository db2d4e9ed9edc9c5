"""`/` on the web port after setup: the console's login, or a page naming the server, never a bare 404."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp

from tests.integration.harness import Harness, make_config, start_harness


async def test_root_redirects_to_the_console(console_server: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{console_server.http_port}"
        async with http.get(f"{base}/", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/admin/"
        async with http.get(f"{base}/") as response:
            assert response.status == 200
            assert response.url.path.startswith("/admin/")


async def test_without_the_console_root_names_the_server(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, console=replace(make_config(tmp_path).console, enabled=False))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{h.http_port}/", allow_redirects=False) as response:
                assert response.status == 200
                assert response.content_type == "text/html"
                assert "you@localhost" in await response.text()
                assert response.headers["X-Content-Type-Options"] == "nosniff"  # a page: security headers
            async with http.get(f"http://127.0.0.1:{h.http_port}/admin/") as response:
                assert response.status == 404  # really no console behind it
    finally:
        await h.close()
