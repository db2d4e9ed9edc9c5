"""Applying parlour.toml when someone changes it while the server runs (an editor, `parlour federation`,
configuration management): the file is looked at every `CONFIG_WATCH_INTERVAL` seconds (a `stat`), and a changed one
is validated and reloaded. An invalid file is refused with the loader's problems and the running
configuration stays, as for every reload."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from appliance.certs.watch import FileWatch
from appliance.config import Config, ConfigError
from appliance.services.settings import parse_file_text

log = logging.getLogger(__name__)

CONFIG_WATCH_INTERVAL = 1.0


class ConfigWatch:
    """Reloads the configuration file at `path` when it changes."""

    def __init__(self, path: Path, reload: Callable[[Config], Awaitable[list[str]]]) -> None:
        self.path = path
        self.reload = reload
        self.watch = FileWatch(lambda: (path,))

    async def check(self) -> None:
        if not self.watch.changed():
            return
        try:
            text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
            new = await asyncio.to_thread(parse_file_text, text, self.path)
        except OSError as exc:
            log.warning("%s changed but cannot be read: %s", self.path, exc)
            return
        except ConfigError as exc:
            log.warning("%s changed but is not valid, keeping the running configuration:\n%s", self.path,
                        "\n".join(exc.problems))
            return
        log.info("%s changed: reloading", self.path)
        await self.reload(new)


__all__ = ["CONFIG_WATCH_INTERVAL", "ConfigWatch"]
