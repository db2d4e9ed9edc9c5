"""A real external component: Debian's biboumi (the XMPP-IRC gateway) connected to Parlour's component
listener, with a local user joining a channel of a small IRC server (ngircd) started by the test, and
messages both ways between that user and an IRC client on the channel.

ngircd listens on port 6667 of a loopback address of its own (127.x.y.z): biboumi tries 6697 and 6670
with TLS first and then 6667 in the clear, so no port has to be configured in its database.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from slixmpp import JID

from appliance.config.model import ComponentsConfig
from tests.integration.harness import Harness, start_harness

GATEWAY = "irc.localhost"
SECRET = "biboumi shared secret"

# ngircd is in /usr/sbin, which an unprivileged user's PATH may lack.
NGIRCD = shutil.which("ngircd") or next((p for p in ("/usr/sbin/ngircd",) if Path(p).exists()), None)
pytestmark = pytest.mark.skipif(
    shutil.which("biboumi") is None or NGIRCD is None,
    reason="needs Debian's biboumi and ngircd (apt-get install biboumi ngircd)",
)


def _free_loopback() -> str:
    """A loopback address whose port 6667 nobody uses (every 127.x.y.z is loopback on Linux)."""
    import socket

    for _ in range(50):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"
        with socket.socket() as sock:
            try:
                sock.bind((address, 6667))
            except OSError:
                continue
            return address
    pytest.skip("port 6667 is taken on every loopback address tried (the packaged ngircd service listens "
                "on all of them: systemctl disable --now ngircd)")


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def irc_server(tmp_path: Path) -> Iterator[str]:
    address = _free_loopback()
    conf = tmp_path / "ngircd.conf"
    conf.write_text(
        "[Global]\nName = irc.test\nInfo = Parlour test IRC server\n"
        f"Listen = {address}\nPorts = 6667\nPidFile = {tmp_path / 'ngircd.pid'}\n"
        f"MotdPhrase = hello\n[Limits]\nConnectRetry = 5\nMaxConnectionsIP = 0\n"
        "[Options]\nDNS = no\nIdent = no\nPAM = no\nSyslog = no\n"
    )
    assert NGIRCD is not None
    proc = start([NGIRCD, "--nodaemon", "--config", str(conf)], tmp_path / "ngircd.log")
    try:
        yield address
    finally:
        stop(proc)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = await start_harness(tmp_path / "parlour",
                            components=ComponentsConfig(port=0, secrets=((GATEWAY, SECRET),)))
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def gateway(harness: Harness, tmp_path: Path) -> AsyncIterator[None]:
    conf = tmp_path / "biboumi.cfg"
    conf.write_text(
        f"hostname={GATEWAY}\npassword={SECRET}\nxmpp_server_ip=127.0.0.1\n"
        f"port={harness.server.ports['component']}\ndb_name={tmp_path / 'biboumi.sqlite'}\n"
        f"identd_port=0\nlog_level=1\nlog_file={tmp_path / 'biboumi.log'}\npolicy_directory={tmp_path}\n"
        "realname_customization=false\n"
    )
    proc = start(["biboumi", str(conf)], tmp_path / "biboumi.out")
    try:
        assert harness.server.core is not None
        async with asyncio.timeout(10):
            while GATEWAY not in harness.server.core.components.connected:
                await asyncio.sleep(0.05)
        yield
    finally:
        # biboumi closes its stream on SIGTERM and waits for Parlour's answer: wait off the event loop.
        await asyncio.to_thread(stop, proc)


class IrcClient:
    """A bare IRC client (RFC 1459 lines) for the other side of the channel."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, address: str, nick: str) -> IrcClient:
        reader, writer = await asyncio.open_connection(address, 6667)
        client = cls(reader, writer)
        client.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        await client.wait_for(" 001 ")
        return client

    def send(self, *lines: str) -> None:
        self.writer.write("".join(f"{line}\r\n" for line in lines).encode())

    async def wait_for(self, text: str, timeout: float = 15.0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.reader.readline()).decode(errors="replace")
                if not line:
                    raise ConnectionError("the IRC server closed the connection")
                if line.startswith("PING"):
                    self.send("PONG" + line[4:].rstrip())
                if text in line:
                    return line

    def close(self) -> None:
        self.writer.close()


async def test_a_local_user_chats_with_an_irc_channel_through_biboumi(
    harness: Harness, irc_server: str, gateway: None
) -> None:
    alice = await harness.client(await harness.user("alice"))
    alice.register_plugin("xep_0045")
    items = await alice.plugin["xep_0030"].get_items(jid=harness.domain)
    assert GATEWAY in {item[0] for item in items["disco_items"]["items"]}

    bob = await IrcClient.connect(irc_server, "bob")
    try:
        bob.send("JOIN #lounge")
        await bob.wait_for("366 bob #lounge")  # end of the name list: bob is in
        room = JID(f"#lounge%{irc_server}@{GATEWAY}")
        await alice.plugin["xep_0045"].join_muc_wait(room, "alice", timeout=20)
        await bob.wait_for("JOIN")  # alice's IRC user arrives on the channel

        alice.send_message(mto=room, mbody="hello from XMPP", mtype="groupchat")
        line = await bob.wait_for("PRIVMSG #lounge")
        assert line.startswith(":alice!") and line.rstrip().endswith(":hello from XMPP")

        bob.send("PRIVMSG #lounge :hello from IRC")
        while True:
            message = await alice.next_message(timeout=15)
            if message["body"] == "hello from IRC":
                break
        assert message["type"] == "groupchat" and message["from"] == f"{room}/bob"
    finally:
        bob.close()
