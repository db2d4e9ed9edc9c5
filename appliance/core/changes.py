"""Changes to shared data that a module keeps in memory, told to the other nodes of a cluster.

A module that caches data of the shared database (blocklists, avatar hashes, ...) announces each change it
makes under a topic and a key; in a cluster (appliance/cluster/changes) the other nodes hear it and drop
or refresh what they cached, and when a node may have missed announcements (its connection to Redis
broke) every listener hears key None: drop everything. On a single server nothing is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

ChangeListener = Callable[[str | None, bytes], Awaitable[None]]
"""Gets the key that changed (None: anything may have changed) and the data announced with it."""


class ChangeLink(Protocol):
    """Carries announcements to the other nodes (a cluster); returns once they are on their way."""

    async def publish(self, topic: str, key: str, data: bytes) -> None: ...


class SharedChanges:
    """The listeners of this process, by topic, and the link to the other nodes (None: a single server)."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[ChangeListener]] = {}
        self.link: ChangeLink | None = None

    def listen(self, topic: str, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener` when another node announces a change under `topic`; returns the undo."""
        self._listeners.setdefault(topic, []).append(listener)
        return lambda: self._listeners.get(topic, []).remove(listener)

    async def announce(self, topic: str, key: str, data: bytes = b"") -> None:
        """Tell the other nodes that `key` under `topic` changed (after the change is stored)."""
        if self.link is not None:
            await self.link.publish(topic, key, data)

    async def heard(self, topic: str, key: str | None, data: bytes = b"") -> None:
        """Another node changed `key` (None: this node may have missed changes) under `topic`."""
        for listener in list(self._listeners.get(topic, ())):
            try:
                await listener(key, data)
            except Exception:
                log.exception("a listener for changes to %s failed", topic)

    async def lost(self) -> None:
        """Announcements may have been missed: every listener drops what it cached."""
        for topic in list(self._listeners):
            await self.heard(topic, None)


__all__ = ["ChangeLink", "ChangeListener", "SharedChanges"]
