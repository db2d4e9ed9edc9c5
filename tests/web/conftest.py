"""A real server with its web listener on ephemeral loopback ports."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.config.load import default_config
from tests.integration.harness import Harness, start_harness


async def web_harness(tmp_path: Path, **http: object) -> Harness:
    """Start a server; keyword args replace [http] keys on top of the harness defaults."""
    base = default_config(tmp_path).http
    return await start_harness(
        tmp_path, http=replace(base, port=0, tls_port=0, interfaces=("127.0.0.1",), **http)
    )


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """Plain HTTP from loopback counts as encrypted here, as behind a local TLS proxy."""
    h = await web_harness(tmp_path, consider_websocket_secure=True, consider_bosh_secure=True)
    try:
        yield h
    finally:
        await h.close()


def trust(h: Harness) -> ssl.SSLContext:
    """A client context trusting the server's local CA."""
    return ssl.create_default_context(cafile=str(h.ca_file))


@pytest.fixture
async def console_server(tmp_path: Path) -> AsyncIterator[Harness]:
    """A server set up as `parlour setup` does it (admin boss@localhost), with the console and API."""
    from tests.web.console_helpers import configured_server

    h = await configured_server(tmp_path)
    try:
        yield h
    finally:
        await h.close()
