"""Announcements as administrators send them from the console: a message to everyone online."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from appliance.services.errors import ServiceError, audit
from appliance.util.i18n import _

MAX_LENGTH = 10_000  # characters: an announcement is a notice, not a document


class Announcer(Protocol):
    """Announcements on one host (modules.announce.Announcements, the one XEP-0133 commands use)."""

    host: str

    async def announce(self, text: str) -> int:
        """Send `text` to every session online on the host; returns how many got it."""
        ...


class AnnouncementDesk:
    """Sends an administrator's announcement to everyone online on every host; audited."""

    def __init__(self, announcers: Callable[[], Iterable[Announcer]]) -> None:
        self.announcers = announcers  # the live hosts' announcers (none when the module is turned off)

    async def send(self, actor: str, text: str) -> int:
        """Send `text`; returns the number of sessions it reached."""
        text = text.replace("\r\n", "\n").strip()
        if not text:
            raise ServiceError(_("Write the announcement first."))
        if len(text) > MAX_LENGTH:
            raise ServiceError(_("An announcement has at most %(count)s characters.", count=MAX_LENGTH))
        announcers = list(self.announcers())
        if not announcers:
            raise ServiceError(_("Announcements are turned off on this server."))
        count = 0
        for announcer in announcers:
            count += await announcer.announce(text)
        audit.info("admin %s: sent an announcement to %d sessions", actor, count)
        return count


__all__ = ["AnnouncementDesk", "Announcer"]
