"""Debian's ejabberd and Prosody as servers to migrate from: started privately in a temp folder on a loopback
port (no TLS: loopback only), filled by real clients, then asked for their XEP-0227 export with their own
tools (`ejabberdctl export_piefxis`, `prosody-migrator` to mod_storage_xep0227). Stopped by PID.

Debian's `ejabberdctl` and `prosody-migrator` are run as private copies with one line changed, as
/work/shared/RECIPES.md §9 does for ejabberd: ejabberdctl would switch to the `ejabberd` user, and the
migrator writes its XEP-0227 files into its compiled-in data folder (/var/lib/prosody) whatever its
configuration says; the copies run as the caller and write into the temp folder.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

EJABBERDCTL = Path("/usr/sbin/ejabberdctl")
PROSODY = shutil.which("prosody")
MIGRATOR = shutil.which("prosody-migrator")
STREAM = ("<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


def ejabberd_missing() -> str | None:
    if not EJABBERDCTL.exists() or shutil.which("erl") is None:
        return "Debian's ejabberd is not installed (apt-get install ejabberd)"
    return None


def prosody_missing() -> str | None:
    if PROSODY is None or MIGRATOR is None:
        return "Debian's prosody is not installed (apt-get install prosody)"
    return None


async def register(port: int, domain: str, user: str, password: str) -> None:
    """In-band registration (XEP-0077) before authentication, over a raw stream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(STREAM.format(domain=domain).encode())
        await _read_until(reader, lambda data: b"</stream:features>" in data)
        writer.write(f"<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>{user}</username>"
                     f"<password>{password}</password></query></iq>".encode())
        reply = await _read_until(reader, lambda data: re.search(rb"<iq[^>]*(/>|>.*</iq>)", data, re.S) is not None)
        assert re.search(rb"type=.result.", reply), reply
    finally:
        writer.close()


async def _read_until(reader: asyncio.StreamReader, done: Callable[[bytes], bool]) -> bytes:
    data = b""
    async with asyncio.timeout(20):
        while not done(data):
            chunk = await reader.read(65536)
            assert chunk, f"the peer closed the stream: {data!r}"
            data += chunk
    return data


async def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the peer exited: {log.read_text(errors='replace')[-3000:]}") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError(f"the peer did not listen on {port}: {log.read_text(errors='replace')[-3000:]}")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


EJABBERD_YML = """\
loglevel: warning
hosts:
  - "{domain}"
listen:
  -
    port: {port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
auth_method: internal
auth_password_format: scram
registration_timeout: infinity
acl:
  local:
    user_regexp: ""
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  register:
    allow: all
  trusted_network:
    allow: loopback
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
shaper_rules:
  c2s_shaper: none
modules:
  mod_admin_extra: {{}}
  mod_disco: {{}}
  mod_offline: {{}}
  mod_private: {{}}
  mod_roster: {{}}
  mod_register:
    ip_access: trusted_network
  mod_vcard:
    search: false
  mod_pubsub:
    plugins:
      - flat
      - pep
  mod_caps: {{}}
  mod_muc:
    host: "conference.{domain}"
"""


class Ejabberd:
    """A private ejabberd serving `domain` on 127.0.0.1:`port`, its Erlang node on `dist_port`."""

    def __init__(self, base: Path, domain: str, port: int, dist_port: int) -> None:
        self.base, self.domain, self.port = base, domain, port
        self.node = f"parlour-mig-{os.getpid()}@localhost"
        self.dist_port = dist_port
        self.process: subprocess.Popen[bytes] | None = None

    def _ctl(self) -> list[str]:
        b = self.base
        etc = b / "etc"
        return [str(b / "ejabberdctl"), "--config-dir", str(etc), "--config", str(etc / "ejabberd.yml"),
                "--ctl-config", str(etc / "ejabberdctl.cfg"), "--logs", str(b / "log"), "--spool", str(b / "spool")]

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._ctl(), *args], capture_output=True, text=True, timeout=120)

    async def start(self) -> None:
        b = self.base
        for sub in ("etc", "log", "spool"):
            (b / sub).mkdir(parents=True, exist_ok=True)
        (b / "etc" / "inetrc").write_text("")
        (b / "etc" / "ejabberd.yml").write_text(EJABBERD_YML.format(domain=self.domain, port=self.port))
        (b / "etc" / "ejabberdctl.cfg").write_text(
            f"ERLANG_NODE={self.node}\nERL_DIST_PORT={self.dist_port}\nINET_DIST_INTERFACE=127.0.0.1\n"
            f'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"\nEJABBERD_PID_PATH={b}/ejabberd.pid\n'
            "EJABBERD_BYPASS_WARNINGS=true\n")
        script = re.sub(r"(?m)^INSTALLUSER=ejabberd$", "INSTALLUSER=", EJABBERDCTL.read_text())
        (b / "ejabberdctl").write_text(script)
        (b / "ejabberdctl").chmod(0o755)
        log = b / "log" / "console.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen([*self._ctl(), "foreground-quiet"], stdout=out, stderr=out,
                                            stdin=subprocess.DEVNULL, cwd=b, start_new_session=True)
        await _wait_port(self.port, self.process, log)

    def export(self) -> Path:
        """`ejabberdctl export_piefxis DIR`: the main file and one file per host."""
        folder = self.base / "export"
        folder.mkdir(exist_ok=True)
        done = self.ctl("export_piefxis", str(folder))
        assert done.returncode == 0, done.stdout + done.stderr
        return folder

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            await asyncio.to_thread(self.ctl, "stop")
            await asyncio.to_thread(_stop, self.process)


PROSODY_CFG = """\
pidfile = "{base}/prosody.pid"
data_path = "{base}/data"
daemonize = false
run_as_root = true
log = {{ info = "{base}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
s2s_direct_tls_ports = {{}}
http_ports = {{}}
https_ports = {{}}
component_ports = {{}}
admin_socket = "{base}/admin.sock"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
allow_registration = true
modules_enabled = {{
    "roster"; "saslauth"; "disco"; "ping"; "offline"; "register"; "vcard"; "private"; "pep"; "mam";
}}
modules_disabled = {{ "s2s"; "tls" }}
VirtualHost "{domain}"
"""

MIGRATOR_CFG = """\
input {{
    type = "internal";
    path = "{base}/data";
    hosts = {{ ["{domain}"] = {{ "accounts"; "roster"; "vcard"; "private"; "pep-pubsub"; "archive-archive" }} }};
}}
output {{
    type = "xep0227";
}}
"""


class Prosody:
    """A private Prosody serving `domain` on 127.0.0.1:`port`, with internal_hashed (SCRAM-SHA-1) storage."""

    def __init__(self, base: Path, domain: str, port: int) -> None:
        self.base, self.domain, self.port = base, domain, port
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        config = self.base / "prosody.cfg.lua"
        config.write_text(PROSODY_CFG.format(base=self.base, domain=self.domain, port=self.port))
        log = self.base / "stderr.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen([PROSODY or "prosody", "--config", str(config), "-F"], stdout=out,
                                            stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
        await _wait_port(self.port, self.process, log)

    def export(self) -> Path:
        """`prosody-migrator` from internal storage to mod_storage_xep0227: one user@host.xml per user."""
        folder = self.base / "export"
        folder.mkdir(exist_ok=True)
        script = re.sub(r"(?m)^CFG_DATADIR=.*$", f"CFG_DATADIR='{folder}';", Path(MIGRATOR or "").read_text())
        migrator = self.base / "prosody-migrator"
        migrator.write_text(script)
        config = self.base / "migrator.cfg.lua"
        config.write_text(MIGRATOR_CFG.format(base=self.base, domain=self.domain))
        done = subprocess.run(["lua5.4", str(migrator), "--root", "--config", str(config)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "Done!" in done.stderr, done.stdout + done.stderr
        return folder

    async def stop(self) -> None:
        await asyncio.to_thread(_stop, self.process)
