"""`parlour invite` (the CLI): links made on the command line work on the running server at once (one database)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from appliance.cli.main import main
from appliance.xmpp.jid import JID
from tests.integration.harness import PASSWORD, Harness


def cli(tmp_path: Path, *args: str) -> int:
    config = tmp_path / "cli.toml"  # the running server's state folder and host
    config.write_text(f'[server]\nstate_dir = "{tmp_path}"\n[hosts."localhost"]\n')
    return main(["invite", args[0], "-c", str(config), *args[1:]])


async def test_a_link_made_on_the_command_line_works_on_the_running_server(
        harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = harness
    alice = await server.user("alice")
    assert await asyncio.to_thread(cli, tmp_path, "create", "--uses", "2", "--expires", "2h",
                                   "--contact", alice, "--group", "Team") == 0
    link, uri, summary = capsys.readouterr().out.splitlines()
    token = link.rsplit("/", 1)[1]
    assert uri == f"xmpp:{alice}?roster;preauth={token};ibr=y"
    assert "2 use(s), valid for 2h" in summary
    assert link == f"https://localhost:5443/invite/{token}"  # the CLI's file names the default HTTPS port
    page = f"http://127.0.0.1:{server.http_port}/invite/{token}"
    async with aiohttp.ClientSession() as s:
        made = await s.post(page, data={"username": "newcomer", "password": PASSWORD, "password2": PASSWORD})
        assert made.status == 200, await made.text()
    newcomer = JID.parse(f"newcomer@{server.domain}")
    assert server.server.stores is not None
    item = await server.server.stores.roster.item(server.domain, "newcomer", alice)
    assert item is not None and item.subscription == "both" and item.groups == ("Team",)
    assert server.server.accounts is not None and await server.server.accounts.exists(newcomer)

    assert await asyncio.to_thread(cli, tmp_path, "list") == 0
    (line,) = capsys.readouterr().out.splitlines()
    invitation_id = line.split()[0]
    assert "1/2 used by newcomer@localhost  valid" in line
    assert await asyncio.to_thread(cli, tmp_path, "revoke", invitation_id) == 0
    assert await asyncio.to_thread(cli, tmp_path, "revoke", invitation_id) == 1
    assert "There is no invitation" in capsys.readouterr().err


def test_bad_terms_are_refused_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(tmp_path, "create", "--expires", "5y") == 2
    assert "from 1m to 365d" in capsys.readouterr().err
    assert cli(tmp_path, "create", "--uses", "0") == 1
    assert "from 1 to 1000 times" in capsys.readouterr().err
    assert cli(tmp_path, "create", "--contact", "nobody@localhost") == 1
    assert "is not an account on localhost" in capsys.readouterr().err
