"""The nodes of a cluster as the console and the API list them ([cluster]; docs/cluster.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from appliance.services.errors import ServiceError
from appliance.util.i18n import _


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node: alive (heartbeat renewed within the expiry) or dead but not yet reaped."""

    name: str
    alive: bool
    sessions: int
    heartbeat_age: float | None  # seconds since its last heartbeat; None: none left
    started: float  # Unix time
    version: str
    this: bool  # the node answering the request


NodeReader = Callable[[], Awaitable[list[NodeView]]]


class ClusterDesk:
    """Lists the cluster's nodes; `reader()` is None on a standalone server (or before the node joined)."""

    def __init__(self, reader: Callable[[], NodeReader | None]) -> None:
        self._reader = reader

    @property
    def enabled(self) -> bool:
        return self._reader() is not None

    async def nodes(self) -> list[NodeView]:
        read = self._reader()
        if read is None:
            return []
        try:
            return await read()
        except Exception as exc:  # the Redis client's connection errors: the console shows the reason
            raise ServiceError(_("The cluster's Redis cannot be read: %(error)s", error=str(exc))) from exc


__all__ = ["ClusterDesk", "NodeReader", "NodeView"]
