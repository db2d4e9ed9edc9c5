"""The control endpoint (app/control.py) on both transports, over real sockets: the Unix socket and the
loopback port with its token that Windows uses (forced here with tcp=True), and `parlour federation
status` asking a real server through the loopback port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.app import Parlour, control
from appliance.app.control import MAX_REQUEST, ControlEndpoint, ask
from appliance.platform.paths import control_port_path, control_socket_path
from tests.integration.test_federation_status import parlour
from tests.web.console_helpers import configured_config

COMMANDS = {"federation status": lambda: {"enabled": True, "links": []}}


@pytest.fixture(params=[True, False], ids=["loopback-port", "unix-socket"])
async def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ControlEndpoint]:
    served = ControlEndpoint(tmp_path, COMMANDS, tcp=request.param)
    await served.start()
    assert served.server is not None
    yield served
    await served.stop()


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[ControlEndpoint]:
    served = ControlEndpoint(tmp_path, COMMANDS, tcp=True)
    await served.start()
    yield served
    await served.stop()


async def exchange(endpoint: ControlEndpoint, line: bytes) -> dict[str, object]:
    """Send one raw request line, read the one-line answer."""
    if endpoint.tcp:
        where = json.loads(endpoint.port_path.read_text())
        reader, writer = await asyncio.open_connection("127.0.0.1", where["port"])
    else:
        reader, writer = await asyncio.open_unix_connection(str(endpoint.socket_path))
    writer.write(line)
    await writer.drain()
    try:
        answer: dict[str, object] = json.loads(await asyncio.wait_for(reader.readline(), 10))
    finally:
        writer.close()
    return answer


def prefix(endpoint: ControlEndpoint) -> bytes:
    return f"{endpoint.token} ".encode() if endpoint.tcp else b""


async def test_answers_a_command_and_refuses_an_unknown_one(endpoint: ControlEndpoint, tmp_path: Path) -> None:
    assert await ask(tmp_path, "federation status") == {"enabled": True, "links": []}
    with pytest.raises(RuntimeError, match="unknown command 'shutdown'"):
        await ask(tmp_path, "shutdown")
    assert endpoint.where.stat().st_mode & 0o777 == 0o600
    assert (control_port_path(tmp_path).exists(), control_socket_path(tmp_path).exists()) == (
        endpoint.tcp, not endpoint.tcp)


async def test_the_port_file_holds_a_loopback_port_and_a_random_token(port: ControlEndpoint, tmp_path: Path) -> None:
    where = json.loads(control_port_path(tmp_path).read_text())
    assert port.server is not None
    assert port.server.sockets[0].getsockname() == ("127.0.0.1", where["port"])
    assert where["token"] == port.token and len(where["token"]) >= 40
    other = ControlEndpoint(tmp_path / "other", COMMANDS, tcp=True)
    (tmp_path / "other").mkdir()
    await other.start()
    try:
        assert other.token != port.token
    finally:
        await other.stop()


@pytest.mark.parametrize("line", [b"federation status\n", b"not-the-token federation status\n", b"\n"])
async def test_a_wrong_or_missing_token_is_refused(port: ControlEndpoint, line: bytes) -> None:
    assert await exchange(port, line) == {"error": "wrong token"}
    # A token of the right length but one character off is refused too.
    assert port.token is not None
    near = ("A" if port.token[0] != "A" else "B") + port.token[1:]
    assert await exchange(port, f"{near} federation status\n".encode()) == {"error": "wrong token"}
    assert await exchange(port, prefix(port) + b"federation status\n") == {
        "result": {"enabled": True, "links": []}}


async def test_an_oversized_request_is_refused(endpoint: ControlEndpoint) -> None:
    line = prefix(endpoint) + b"federation status" + b" " * (MAX_REQUEST + 1) + b"\n"
    assert await exchange(endpoint, line) == {"error": f"request longer than {MAX_REQUEST} bytes"}
    assert await exchange(endpoint, prefix(endpoint) + b"federation status\n") == {
        "result": {"enabled": True, "links": []}}


async def test_a_silent_client_is_dropped_after_the_timeout(
    endpoint: ControlEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "REQUEST_TIMEOUT", 0.2)
    if endpoint.tcp:
        reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.server.sockets[0].getsockname()[1])
    else:
        reader, writer = await asyncio.open_unix_connection(str(endpoint.socket_path))
    try:
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed without an answer
    finally:
        writer.close()


async def test_a_stopped_server_leaves_no_file_and_a_stale_one_gets_no_answer(tmp_path: Path) -> None:
    served = ControlEndpoint(tmp_path, COMMANDS, tcp=True)
    await served.start()
    left = control_port_path(tmp_path).read_text()
    await served.stop()
    assert not control_port_path(tmp_path).exists()
    with pytest.raises(FileNotFoundError):
        await ask(tmp_path, "federation status")
    control_port_path(tmp_path).write_text(left)  # as a killed server leaves it
    with pytest.raises(ConnectionRefusedError):
        await ask(tmp_path, "federation status")
    control_port_path(tmp_path).write_text("{}")
    with pytest.raises(ValueError, match="no port and token"):
        await ask(tmp_path, "federation status")
    # The next server replaces what the killed one left.
    again = ControlEndpoint(tmp_path, COMMANDS, tcp=True)
    await again.start()
    try:
        assert await ask(tmp_path, "federation status") == {"enabled": True, "links": []}
    finally:
        await again.stop()


class AclRefused(Exception):  # stands in for pywintypes.error, which is no OSError
    """What pywin32 raises when Windows refuses an ACL (a stand-in: no Windows here)."""


async def test_a_token_file_that_cannot_be_protected_is_not_written_and_the_server_runs_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(path: Path) -> None:
        raise AclRefused(5, "SetNamedSecurityInfo", "Access is denied.")

    monkeypatch.setattr(control, "keep_to_owner", refuse)
    served = ControlEndpoint(tmp_path, COMMANDS, tcp=True)
    await served.start()  # does not raise: the server starts without the endpoint
    assert served.server is None
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    assert "no control endpoint" in caplog.text and "Access is denied" in caplog.text
    with pytest.raises(FileNotFoundError):
        await ask(tmp_path, "federation status")


async def test_federation_status_on_the_command_line_through_the_loopback_port(tmp_path: Path) -> None:
    config = await configured_config(tmp_path, federation=True)
    assert config.source is not None
    server = Parlour(config, control_over_tcp=True)
    await server.start()
    try:
        state = config.server.state_dir
        assert control_port_path(state).exists() and not control_socket_path(state).exists()
        shown = await asyncio.to_thread(parlour, "federation", "status", config=config.source)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[0] == "federation: on; 0 connection(s)"
        as_json = await asyncio.to_thread(parlour, "federation", "status", "--json", config=config.source)
        assert json.loads(as_json.stdout)["enabled"] is True
    finally:
        await server.stop()
    gone = await asyncio.to_thread(parlour, "federation", "status", config=config.source)
    assert gone.returncode == 1 and "no running server answers at" in gone.stderr
