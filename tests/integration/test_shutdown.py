"""SIGTERM to the real server process: every client is told, each in its transport's own way, and the
messages a stream-management session had not acknowledged are stored offline for the next login.

- WebSocket (RFC 7395 §3.6, RFC 6455 §7): `<stream:error><system-shutdown/>`, the framing `<close/>`, then
  a Close frame with 1001 (going away);
- TCP (RFC 6120 §4.9): the stream error, then `</stream:stream>`;
- BOSH (XEP-0124 §17, XEP-0206): the held request answers `type='terminate' condition='system-shutdown'`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from lxml import etree

from appliance.xmpp.ns import NS_BOSH, NS_CLIENT, NS_FRAMING, NS_SM, NS_STREAM, NS_STREAMS
from tests.integration.harness import free_port
from tests.integration.process import TIMEOUT, ServerProcess, parlour
from tests.web.clients import BoshClient, WsClient, message

DOMAIN = "localhost"
PASSWORD = "correct horse"
USERS = ("alice", "bob", "carol")
SM = f"{{{NS_SM}}}"


def write_config(tmp_path: Path) -> tuple[Path, int, int]:
    """A config with c2s and plain HTTP on free loopback ports (WebSocket and BOSH from loopback count as
    encrypted, so PLAIN works); returns (config, c2s port, HTTP port)."""
    c2s, http = free_port(), free_port()
    config = tmp_path / "parlour.toml"
    config.write_text(
        '[server]\nstate_dir = "state"\n\n'
        f'[c2s]\ninterfaces = ["127.0.0.1"]\nport = {c2s}\ndirect_tls_port = 0\n\n'
        "[limits]\nscram_iterations = 4096\nauth_failure_delay = 0\n\n"
        f'[http]\ninterfaces = ["127.0.0.1"]\nport = {http}\nhttps = false\n'
        "consider_websocket_secure = true\nconsider_bosh_secure = true\n\n"
        f'[hosts."{DOMAIN}"]\n'
    )
    for user in USERS:
        added = parlour("user", "add", f"{user}@{DOMAIN}", "--config", str(config), stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stdout + added.stderr
    return config, c2s, http


async def ws_frames_until_closed(ws: WsClient) -> tuple[list[etree._Element], aiohttp.WSMessage]:
    """Every text frame until the server's Close frame; returns them and the Close message."""
    frames: list[etree._Element] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            received = await ws.ws.receive()
            if received.type is not aiohttp.WSMsgType.TEXT:
                return frames, received
            frames.append(etree.fromstring(received.data.encode()))


async def tcp_until_eof(reader: asyncio.StreamReader) -> bytes:
    data = b""
    async with asyncio.timeout(TIMEOUT):
        while chunk := await reader.read(65_536):
            data += chunk
    return data


async def test_sigterm_closes_websocket_tcp_and_bosh_properly_and_keeps_unacked_messages(tmp_path: Path) -> None:
    config, c2s_port, http_port = write_config(tmp_path)
    server = ServerProcess(config, tmp_path / "server.log")
    await server.start()
    ws_url = f"ws://127.0.0.1:{http_port}/xmpp-websocket"
    alice = await WsClient.connect(ws_url)
    bob = await WsClient.connect(ws_url)
    bosh = BoshClient(f"http://127.0.0.1:{http_port}/http-bind")
    reader, writer = await asyncio.open_connection("127.0.0.1", c2s_port)
    try:
        # alice: stream management with resumption; she receives three messages and acknowledges none.
        alice_jid = await alice.login(DOMAIN, "alice", PASSWORD, resource="phone")
        await alice.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        await alice.recv_tag(f"{SM}enabled")
        await bob.login(DOMAIN, "bob", PASSWORD)
        bodies = [f"unacknowledged {n}" for n in range(3)]
        for body in bodies:
            await bob.send(message(alice_jid, body))
        got = [(await alice.recv_tag(f"{{{NS_CLIENT}}}message", TIMEOUT)).findtext(f"{{{NS_CLIENT}}}body")
               for _ in bodies]
        assert got == bodies
        # carol over BOSH, with a request held by the server; a TCP client that opened its stream.
        await bosh.login(DOMAIN, "carol", PASSWORD)
        held = asyncio.ensure_future(bosh.post())
        writer.write(f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' to='{DOMAIN}' "
                     "version='1.0'>".encode())
        await writer.drain()
        await reader.readuntil(b"</stream:features>")
        await asyncio.sleep(0.2)  # the BOSH request is held

        assert server.process is not None
        server.process.terminate()

        frames, closing = await ws_frames_until_closed(alice)
        tags = [frame.tag for frame in frames]
        error = tags.index(f"{{{NS_STREAM}}}error")
        assert frames[error].find(f"{{{NS_STREAMS}}}system-shutdown") is not None, etree.tostring(frames[error])
        assert tags[error + 1:] == [f"{{{NS_FRAMING}}}close"], tags
        assert closing.type is aiohttp.WSMsgType.CLOSE, closing
        assert closing.data == aiohttp.WSCloseCode.GOING_AWAY, closing

        tcp = await tcp_until_eof(reader)  # what came after the stream features
        assert tcp.startswith(f"<stream:error><system-shutdown xmlns='{NS_STREAMS}'/>".encode()), tcp
        assert tcp.endswith(b"</stream:error></stream:stream>"), tcp

        answer = await asyncio.wait_for(held, TIMEOUT)
        assert answer.tag == f"{{{NS_BOSH}}}body"
        assert (answer.get("type"), answer.get("condition")) == ("terminate", "system-shutdown"), \
            etree.tostring(answer)
        await asyncio.wait_for(server.process.wait(), TIMEOUT)
        assert server.process.returncode == 0
    finally:
        writer.close()
        await alice.close()
        await bob.close()
        await bosh.close()
        await server.stop()

    # The three messages alice never acknowledged wait offline for her next login.
    await server.start()
    again = await WsClient.connect(ws_url)
    try:
        await again.login(DOMAIN, "alice", PASSWORD, resource="laptop")
        await again.send(f"<presence xmlns='{NS_CLIENT}'/>")
        got = [(await again.recv_tag(f"{{{NS_CLIENT}}}message", TIMEOUT)).findtext(f"{{{NS_CLIENT}}}body")
               for _ in bodies]
        assert got == bodies
    finally:
        await again.close()
        await server.stop()
