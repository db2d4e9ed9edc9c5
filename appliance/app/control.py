"""The control endpoint: how `parlour` commands ask a running server about its live state.

The command line writes one line naming a command, the server answers with one line of JSON,
`{"result": ...}` or `{"error": "..."}`, and closes. Only questions are answered here, never changes:
those go through parlour.toml, which the server reloads. Two transports, one protocol:

- a Unix socket in the state folder (`platform.paths.control_socket_path`), readable and writable by the
  server's user only (root may always connect): the file's permissions are the authentication;
- where there are no Unix sockets (Windows), a TCP listener on 127.0.0.1 at an ephemeral port. Any local
  user can connect there, so the request line starts with a random token; the port and token are in a
  file in the state folder (`platform.paths.control_port_path`) that only the server's account (and root,
  SYSTEM, Administrators) can read, and the token is compared in constant time. Linux can use it too
  (`ControlEndpoint(tcp=True)`), which is how the tests run it.

Both limit a request to MAX_REQUEST bytes and REQUEST_TIMEOUT seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from appliance.platform.access import keep_to_owner
from appliance.platform.paths import control_port_path, control_socket_path
from appliance.util.files import write_atomically

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0
MAX_REQUEST = 256  # bytes: a token and a command name
LOOPBACK = "127.0.0.1"


def has_unix_sockets() -> bool:
    """Whether this platform's asyncio serves Unix sockets (not on Windows)."""
    return hasattr(asyncio, "start_unix_server")


class ControlEndpoint:
    """Answers `commands` (name -> a function returning something JSON can carry) for the server whose
    state folder is `state_dir`: on its Unix socket, or with `tcp` (forced where Unix sockets are missing)
    on a loopback port behind a token."""

    def __init__(self, state_dir: Path, commands: Mapping[str, Callable[[], object]], *, tcp: bool = False) -> None:
        self.commands = commands
        self.tcp = tcp or not has_unix_sockets()
        self.socket_path = control_socket_path(state_dir)
        self.port_path = control_port_path(state_dir)
        self.token: str | None = None  # the loopback listener's secret
        self.server: asyncio.Server | None = None

    @property
    def where(self) -> Path:
        """The file a command line looks for: the socket, or the port and token."""
        return self.port_path if self.tcp else self.socket_path

    async def start(self) -> None:
        for left_behind in (self.socket_path, self.port_path):  # by a server that was killed
            with contextlib.suppress(FileNotFoundError):
                left_behind.unlink()
        try:
            if self.tcp:
                await self._start_tcp()
            else:
                # The default umask already keeps others from connecting (that needs write permission);
                # keep_to_owner then narrows it to the server's user.
                self.server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path),
                                                              limit=MAX_REQUEST)
                keep_to_owner(self.socket_path)
        except Exception as exc:  # e.g. a state folder path too long for a Unix socket, or
            # a Windows ACL that cannot be set (pywintypes.error is no OSError): the server runs on without
            # the endpoint, and no token is left in a file others could read.
            log.warning("no control endpoint at %s (parlour commands cannot ask this server): %s", self.where, exc)
            await self.stop()

    async def _start_tcp(self) -> None:
        self.token = secrets.token_urlsafe(32)
        self.server = await asyncio.start_server(self._serve, LOOPBACK, 0, limit=MAX_REQUEST)
        port = self.server.sockets[0].getsockname()[1]
        write_atomically(self.port_path, json.dumps({"port": port, "token": self.token}) + "\n",
                         mode=0o600, protect=keep_to_owner)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    line = await reader.readline()
            except ValueError:  # longer than the reader's limit, MAX_REQUEST
                reply: dict[str, object] = {"error": f"request longer than {MAX_REQUEST} bytes"}
            else:
                reply = self._answer(line.decode("utf-8", "replace").strip())
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError) as exc:
            log.debug("control endpoint: %s", exc)
        except Exception:
            log.exception("control endpoint: answering failed")
        finally:
            writer.close()

    def _answer(self, request: str) -> dict[str, object]:
        if self.token is not None:
            given, _, request = request.partition(" ")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                log.warning("control port: refused a request with a wrong token (another local program?)")
                return {"error": "wrong token"}
        command = self.commands.get(request)
        if command is None:
            return {"error": f"unknown command {request!r}"}
        return {"result": command()}

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None
        with contextlib.suppress(FileNotFoundError):
            self.where.unlink()


async def ask(state_dir: Path, command: str) -> object:
    """The command line's side: the answer of the server running from `state_dir` to `command`. Raises
    OSError when no server answers (FileNotFoundError, ConnectionRefusedError, PermissionError), ValueError
    for an unreadable port file, RuntimeError for an error answer."""
    port_path = control_port_path(state_dir)
    if port_path.exists() or not has_unix_sockets():
        where = json.loads(port_path.read_text(encoding="utf-8"))
        if not isinstance(where, dict) or not isinstance(where.get("token"), str):
            raise ValueError(f"{port_path} holds no port and token")
        reader, writer = await asyncio.open_connection(LOOPBACK, int(where["port"]))
        request = f"{where['token']} {command}"
    else:
        reader, writer = await asyncio.open_unix_connection(str(control_socket_path(state_dir)))
        request = command
    try:
        writer.write(request.encode() + b"\n")
        await writer.drain()
        async with asyncio.timeout(REQUEST_TIMEOUT):
            reply = json.loads(await reader.readline() or b"{}")
    finally:
        writer.close()
    if "error" in reply or "result" not in reply:
        raise RuntimeError(reply.get("error", "no answer"))
    return reply["result"]


__all__ = ["ControlEndpoint", "ask", "has_unix_sockets"]
