"""The control socket: how `parlour` commands ask a running server about its live state.

A Unix socket in the state folder (`platform.paths.control_socket_path`), readable and writable by the
server's user only (root may always connect): the command line writes one line naming a command, the
server answers with one line of JSON, `{"result": ...}` or `{"error": "..."}`, and closes. Only questions
are answered here, never changes: those go through parlour.toml, which the server reloads. Where the
platform has no Unix sockets (Windows) there is no control socket and the commands say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0
MAX_REQUEST = 256  # bytes: a command name


class ControlSocket:
    """Answers `commands` (name -> a function returning something JSON can carry) on the socket at `path`."""

    def __init__(self, path: Path, commands: Mapping[str, Callable[[], object]]) -> None:
        self.path = path
        self.commands = commands
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        if not hasattr(asyncio, "start_unix_server"):
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left behind by a server that was killed
        try:
            # The default umask already keeps others from connecting (that needs write permission);
            # chmod then narrows it to the server's user.
            self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))
            os.chmod(self.path, 0o600)
        except OSError as exc:  # e.g. a state folder path too long for a Unix socket
            log.warning("no control socket at %s (parlour commands cannot ask this server): %s", self.path, exc)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                line = await reader.readline()
            name = line[:MAX_REQUEST].decode("utf-8", "replace").strip()
            command = self.commands.get(name)
            if command is None:
                reply: dict[str, object] = {"error": f"unknown command {name!r}"}
            else:
                reply = {"result": command()}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError) as exc:
            log.debug("control socket: %s", exc)
        except Exception:
            log.exception("control socket: answering failed")
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


async def ask(path: Path, command: str) -> object:
    """The command line's side: the running server's answer to `command`. Raises OSError when no server
    answers at `path` (FileNotFoundError, ConnectionRefusedError, PermissionError), RuntimeError for an
    error answer."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(command.encode() + b"\n")
        await writer.drain()
        async with asyncio.timeout(REQUEST_TIMEOUT):
            reply = json.loads(await reader.readline() or b"{}")
    finally:
        writer.close()
    if "error" in reply or "result" not in reply:
        raise RuntimeError(reply.get("error", "no answer"))
    return reply["result"]


__all__ = ["ControlSocket", "ask"]
