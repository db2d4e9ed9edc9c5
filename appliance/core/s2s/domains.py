"""The domains this process answers for over s2s: virtual hosts and service domains, as a live view."""

from __future__ import annotations

from collections.abc import Iterator, Mapping


class LocalDomains:
    """`name in domains` and iteration over the hosts and service domains (reloads show at once)."""

    __slots__ = ("_hosts", "_services")

    def __init__(self, hosts: Mapping[str, object], services: Mapping[str, object]) -> None:
        self._hosts = hosts
        self._services = services

    def __contains__(self, name: object) -> bool:
        return name in self._hosts or name in self._services

    def __iter__(self) -> Iterator[str]:
        yield from self._hosts
        yield from self._services

    def __len__(self) -> int:
        return len(self._hosts) + len(self._services)
