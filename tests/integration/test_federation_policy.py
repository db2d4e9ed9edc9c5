"""Federation policy on a running server with a real client: stanzas to a refused remote domain never leave
and the sender is told why; `parlour federation block|unblock|list` (the real command line, editing
parlour.toml) and the console apply to the next stanza without a restart; federation off, allowlist mode
and silent drops. The policy check runs before any s2s routing, so no remote server is needed: a domain
the policy lets through ends in remote-server-not-found here."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import slixmpp

from tests.integration.harness import Client, Harness
from tests.web.console_helpers import admin_login, configured_server, csrf_of, http_session


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Harness]:
    h = await configured_server(tmp_path, federation=True)  # what the wizard writes for "yes"
    try:
        yield h
    finally:
        await h.close()


async def error_for(client: Client, to: str) -> slixmpp.Message:
    client.send_message(mto=to, mbody="hello", mtype="chat")
    reply = await client.next_message()
    assert reply["type"] == "error" and reply["from"] == to
    return reply


def parlour(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


def blocked(h: Harness) -> tuple[str, ...]:
    assert h.server.core is not None
    return h.server.core.config.federation.blocked_domains


async def test_the_command_line_blocks_and_unblocks_on_a_running_server(server: Harness) -> None:
    path = server.server.config.source
    assert path is not None
    alice = await server.client(await server.user("alice"))
    assert (await error_for(alice, "romeo@blocked.example"))["error"]["condition"] == "remote-server-not-found"

    done = await asyncio.to_thread(parlour, "federation", "block", "Blocked.Example", config=path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("blocked blocked.example in ")
    assert 'blocked_domains = ["blocked.example"]' in path.read_text()
    await until(lambda: blocked(server) == ("blocked.example",))  # the server noticed the file

    error = (await error_for(alice, "romeo@blocked.example"))["error"]
    assert error["condition"] == "not-allowed" and error["text"] == "blocked.example is blocked on this server"
    sub = await error_for(alice, "lounge@conference.blocked.example")  # subdomains are covered
    assert sub["error"]["condition"] == "not-allowed"
    assert (await error_for(alice, "romeo@other.example"))["error"]["condition"] == "remote-server-not-found"

    listed = await asyncio.to_thread(parlour, "federation", "list", config=path)
    assert listed.returncode == 0 and "  blocked.example" in listed.stdout.splitlines()
    again = await asyncio.to_thread(parlour, "federation", "block", "blocked.example", config=path)
    assert again.returncode == 1 and "blocked.example is blocked already" in again.stderr

    done = await asyncio.to_thread(parlour, "federation", "unblock", "blocked.example", config=path)
    assert done.returncode == 0, done.stderr
    await until(lambda: blocked(server) == ())
    assert (await error_for(alice, "romeo@blocked.example"))["error"]["condition"] == "remote-server-not-found"


async def test_the_console_blocks_and_unblocks_at_once(server: Harness) -> None:
    alice = await server.client(await server.user("alice"))
    base = f"http://127.0.0.1:{server.http_port}"
    async with http_session() as http:
        status, _ = await admin_login(http, base)
        assert status == 200
        page = await http.get(f"{base}/admin/federation")
        html = await page.text()
        assert "No domain is blocked." in html
        response = await http.post(f"{base}/admin/federation/block",
                                   data={"csrf": csrf_of(html), "domain": "spam.example"})
        assert response.status == 200
        html = await response.text()
        assert "spam.example is blocked: nothing goes to it or comes from it." in html
        assert '<td class="blocked-domain">spam.example</td>' in html
        assert blocked(server) == ("spam.example",)  # applied before the page came back
        assert (await error_for(alice, "eve@spam.example"))["error"]["condition"] == "not-allowed"
        assert server.server.config.source is not None
        assert 'blocked_domains = ["spam.example"]' in server.server.config.source.read_text()

        response = await http.post(f"{base}/admin/federation/unblock",
                                   data={"csrf": csrf_of(html), "domain": "spam.example"})
        assert "spam.example is no longer blocked." in await response.text()
        assert (await error_for(alice, "eve@spam.example"))["error"]["condition"] == "remote-server-not-found"


async def test_federation_off_allowlist_and_silent_drops(server: Harness) -> None:
    core = server.server.core
    assert core is not None

    async def policy(**changes: object) -> None:
        await server.server.reload(dataclasses.replace(
            core.config, federation=dataclasses.replace(core.config.federation, **changes)))

    alice = await server.client(await server.user("alice"))
    await policy(enabled=False)
    error = (await error_for(alice, "romeo@montague.example"))["error"]
    assert error["condition"] == "not-allowed"
    assert error["text"] == "This server does not talk to users of other XMPP servers"

    await policy(enabled=True, mode="allowlist", allowed_domains=("montague.example",))
    assert (await error_for(alice, "romeo@montague.example"))["error"]["condition"] == "remote-server-not-found"
    error = (await error_for(alice, "eve@elsewhere.example"))["error"]
    assert error["condition"] == "not-allowed" and "elsewhere.example is not one" in error["text"]

    await policy(silent_drop=True)
    alice.send_message(mto="eve@elsewhere.example", mbody="dropped", mtype="chat")
    await alice.plugin["xep_0199"].ping(server.domain, timeout=5)  # the drop happened before this answer
    assert alice.messages.empty()


async def test_an_edited_file_is_applied_and_an_invalid_one_refused(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    from appliance.app.config_watch import ConfigWatch
    from appliance.config.edit import set_key

    path = server.server.config.source
    assert path is not None
    watch = ConfigWatch(path, server.server.reload)  # what the running server checks every second
    await watch.check()
    text = path.read_text()
    path.write_text(set_key(text, "federation", "blocked_domains", '["not a domain"]'))
    await watch.check()
    assert blocked(server) == ()  # refused: the running configuration stays
    assert "federation.blocked_domains" in caplog.text and "keeping the running configuration" in caplog.text
    path.write_text(set_key(text, "federation", "blocked_domains", '["edited.example"]'))
    await watch.check()
    assert blocked(server) == ("edited.example",)
    alice = await server.client(await server.user("alice"))
    assert (await error_for(alice, "someone@edited.example"))["error"]["condition"] == "not-allowed"


async def test_the_command_line_switches_federation_on_and_off(tmp_path: Path) -> None:
    """`parlour federation enable|disable` on a server set up without federation: the running server
    opens its s2s listener within seconds and closes it again, without a restart."""
    h = await configured_server(tmp_path, federation=False)
    try:
        path = h.server.config.source
        assert path is not None and h.server.federation is None
        port = h.server.config.s2s.port
        done = await asyncio.to_thread(parlour, "federation", "enable", config=path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("federation on in ")
        await until(lambda: h.server.federation is not None)
        assert h.server.ports["s2s"] == port
        _, writer = await asyncio.open_connection("127.0.0.1", port)  # someone listens now
        writer.close()
        listed = await asyncio.to_thread(parlour, "federation", "list", config=path)
        assert "federation: on, with every server except those blocked" in listed.stdout

        done = await asyncio.to_thread(parlour, "federation", "disable", config=path)
        assert done.returncode == 0, done.stderr
        await until(lambda: h.server.federation is None)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
    finally:
        await h.close()
