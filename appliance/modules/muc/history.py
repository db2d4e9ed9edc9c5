"""Room history for newcomers (XEP-0045 §7.2.15): the last messages, cut by maxstanzas, maxchars,
seconds and since."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

from appliance.modules._util import parse_stamp
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.ns import NS_MUC

HISTORY = f"{{{NS_MUC}}}history"


@dataclass(frozen=True, slots=True)
class Entry:
    """One remembered groupchat message: serialized without 'to', with its delay already added."""

    data: bytes
    stamp: float
    archive_id: str = ""  # the room's stanza-id, for moderation


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """What a joining client asked for; None means "no limit from the client"."""

    maxstanzas: int | None = None
    maxchars: int | None = None
    seconds: float | None = None
    since: float | None = None

    @classmethod
    def parse(cls, x: etree._Element | None) -> HistoryRequest:
        history = x.find(HISTORY) if x is not None else None
        if history is None:
            return cls()

        def number(name: str) -> int | None:
            text = history.get(name)
            if text is None:
                return None
            try:
                return max(0, int(text))
            except ValueError:
                raise StanzaError.bad_request(f"history '{name}' needs a number") from None

        since = history.get("since")
        return cls(number("maxstanzas"), number("maxchars"), number("seconds"),
                   parse_stamp(since) if since else None)


class History:
    """The newest `length` messages of a room, oldest first."""

    __slots__ = ("_entries",)

    def __init__(self, length: int) -> None:
        self._entries: deque[Entry] = deque(maxlen=max(length, 0))

    def resize(self, length: int) -> None:
        if length != self._entries.maxlen:
            self._entries = deque(self._entries, maxlen=max(length, 0))

    def add(self, entry: Entry) -> None:
        if self._entries.maxlen:
            self._entries.append(entry)

    def replace(self, archive_id: str, data: bytes | None) -> bool:
        """Swap a message for a tombstone (or drop it when `data` is None); False when not held."""
        for i, entry in enumerate(self._entries):
            if entry.archive_id == archive_id:
                if data is None:
                    del self._entries[i]
                else:
                    self._entries[i] = Entry(data, entry.stamp, archive_id)
                return True
        return False

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def select(self, request: HistoryRequest, now: float) -> Iterator[Entry]:
        """The entries the request allows, oldest first."""
        chosen: list[Entry] = []
        chars = 0
        for entry in reversed(self._entries):
            if request.maxstanzas is not None and len(chosen) >= request.maxstanzas:
                break
            if request.seconds is not None and entry.stamp < now - request.seconds:
                break
            if request.since is not None and entry.stamp <= request.since:
                break
            chars += len(entry.data)
            if request.maxchars is not None and chars > request.maxchars:
                break
            chosen.append(entry)
        return reversed(chosen)
