"""A real ejabberd (Debian's package) as a federation peer, in a network namespace of its own.

Like prosody_peer: the namespace has its own address (ejabberd listens on 5222/5269 there) and its own
resolv.conf pointing at the test's DNS server, which Erlang's resolver reads (Debian's inetrc). The
Erlang node gets a unique name and a fixed distribution port, so no epmd is needed or started; accounts
are created in one call by a hidden Erlang node (`ejabberdctl register` boots a VM per account). Config,
database, certificates and logs live under a temp directory; the VM is stopped by its process group.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from tests.integration.prosody_peer import Issued, Namespace, stop_group

EJABBERDCTL = shutil.which("ejabberdctl")
ERL = shutil.which("erl")
DIST_PORT = 35199  # inside the namespace: no clash with anything outside it
COOKIE = "parlour_federation_test"

CONFIG = """\
loglevel: {loglevel}
log_rotate_count: 0
hosts:
  - "{domain}"
certfiles:
  - "{base}/certs/{domain}.pem"
ca_file: "{cafile}"
s2s_cafile: "{cafile}"
s2s_use_starttls: required
listen:
  - port: 5222
    ip: "{address}"
    module: ejabberd_c2s
    starttls: true
    shaper: none
    max_stanza_size: 262144
  - port: 5269
    ip: "{address}"
    module: ejabberd_s2s_in
    shaper: none
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
shaper_rules:
  c2s_shaper: none
  s2s_shaper: none
  max_user_offline_messages: 5000
  max_user_sessions: 10
modules:
  mod_blocking: {{}}
  mod_caps: {{}}
  mod_carboncopy: {{}}
  mod_disco: {{}}
  mod_last: {{}}
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_ping: {{}}
  mod_privacy: {{}}
  mod_roster: {{}}
  mod_s2s_dialback: {{}}
  mod_vcard:
    search: false
  mod_version: {{}}
{services}"""

# With `services=True`: rooms and PubSub (PEP on the account host) for the cross-server feature tests
SERVICES = """\
  mod_muc:
    hosts: ["rooms.@HOST@"]
    history_size: 20
  mod_pubsub:
    hosts: ["pubsub.@HOST@"]
    plugins: ["flat", "pep"]
"""

CTL_CONFIG = """\
ERLANG_NODE={node}
ERL_DIST_PORT={dist_port}
INET_DIST_INTERFACE=127.0.0.1
ERL_MAX_PORTS=65536
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -setcookie {cookie}"
EJABBERD_PID_PATH={base}/ejabberd.pid
EJABBERD_BYPASS_WARNINGS=true
"""

# One rpc from a hidden node: ejabberd_auth:try_register/3 for every account ({error, exists} is fine).
REGISTER = """
R = [rpc:call('{node}', ejabberd_auth, try_register, [list_to_binary(U), <<"{domain}">>, list_to_binary(P)])
     || {{U, P}} <- {accounts}],
io:format("~p~n", [R]), halt().
"""


def unavailable() -> str | None:
    """Why ejabberd federation tests cannot run here, or None."""
    if EJABBERDCTL is None or ERL is None:
        return "Debian's ejabberd is not installed (apt-get install ejabberd)"
    from tests.integration.prosody_peer import unavailable as namespaces_unavailable
    reason = namespaces_unavailable()
    return None if reason is None or reason.startswith("Debian's prosody") else reason


class EjabberdPeer:
    """One ejabberd serving `domain` inside namespace `ns`; `await start()`, `await stop()`."""

    def __init__(self, base: Path, ns: Namespace, domain: str, *, certificate: Issued, cafile: Path,
                 users: dict[str, str] | None = None, loglevel: str = "info", node: str | None = None,
                 dist_port: int = DIST_PORT, services: bool = False) -> None:
        """`node` and `dist_port` tell apart several ejabberds in one namespace."""
        self.base = base
        self.ns = ns
        self.domain = domain
        self.certificate = certificate
        self.cafile = cafile
        self.users = users or {}
        self.loglevel = loglevel
        self.node = node or f"ejabberd{ns.name}@localhost"
        self.dist_port = dist_port
        self.services = services
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return self.ns.inner

    def _write_config(self) -> Path:
        base = self.base
        for folder in ("certs", "db", "log"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        pem = base / "certs" / f"{self.domain}.pem"  # ejabberd wants key and certificate in one file
        pem.write_bytes(self.certificate.cert.read_bytes() + self.certificate.key.read_bytes())
        pem.chmod(0o600)
        (base / "ejabberd.yml").write_text(CONFIG.format(
            loglevel=self.loglevel, domain=self.domain, base=base, cafile=self.cafile, address=self.address,
            services=SERVICES if self.services else ""))
        (base / "ejabberdctl.cfg").write_text(CTL_CONFIG.format(node=self.node, dist_port=self.dist_port,
                                                                cookie=COOKIE, base=base))
        shutil.copy("/etc/ejabberd/inetrc", base / "inetrc")
        # Debian's ejabberdctl switches to the ejabberd user when run as root; this copy runs as we do
        ctl = base / "ejabberdctl"
        script = Path(EJABBERDCTL or "ejabberdctl").read_text()
        ctl.write_text(script.replace("\nINSTALLUSER=ejabberd\n", "\nINSTALLUSER=\n"))
        ctl.chmod(0o755)
        return ctl

    async def start(self) -> None:
        base = self.base
        ctl = self._write_config()
        argv = ["ip", "netns", "exec", self.ns.name, "env", f"HOME={base}", str(ctl),
                "--config-dir", str(base), "--config", str(base / "ejabberd.yml"),
                "--ctl-config", str(base / "ejabberdctl.cfg"), "--logs", str(base / "log"),
                "--spool", str(base / "db"), "foreground"]
        with open(base / "log" / "console.log", "wb") as console:
            self.process = subprocess.Popen(argv, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=base)
        for _ in range(600):  # an Erlang VM on a busy 2-core machine: allow 30 s
            if self.process.poll() is not None:
                raise RuntimeError(f"ejabberd exited: {self.log()[-3000:]}")
            try:
                _, writer = await asyncio.open_connection(self.address, 5269)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        else:
            raise RuntimeError(f"ejabberd did not start listening: {self.log()[-3000:]}")
        await self.register(self.users)

    async def register(self, accounts: dict[str, str]) -> None:
        """Create `accounts` (name -> password) inside the running ejabberd."""
        if not accounts:
            return
        listing = "[" + ",".join(f'{{"{u}","{p}"}}' for u, p in accounts.items()) + "]"
        code = REGISTER.format(node=self.node, domain=self.domain, accounts=listing)
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.ns.name, "env", f"HOME={self.base}", ERL or "erl",
            "-sname", f"reg{self.node.partition('@')[0]}@localhost", "-hidden", "-noinput", "-setcookie", COOKIE,
            "-erl_epmd_port", str(self.dist_port), "-start_epmd", "false", "-dist_listen", "false", "-eval", code,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        text = out.decode(errors="replace")
        if proc.returncode != 0 or "badrpc" in text or text.count("ok") + text.count("exists") < len(accounts):
            raise RuntimeError(f"registering on ejabberd failed: {text}")

    async def stop(self) -> None:
        await stop_group(self.process, grace=10.0)  # the VM stops cleanly on SIGTERM (OTP >= 19)

    def log(self) -> str:
        texts = []
        for name in ("console.log", "ejabberd.log", "error.log"):
            path = self.base / "log" / name
            if path.exists():
                texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)
