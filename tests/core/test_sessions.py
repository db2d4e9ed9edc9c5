"""Which sessions a message to a bare JID reaches (RFC 6121 §8.5.2.1), in the one place that decides it."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from appliance.core.sessions import SessionDirectory
from appliance.xmpp.jid import JID


@dataclass(eq=False)
class Bound:
    """A bound session as the directory sees it (no stream behind it)."""

    jid: JID
    priority: int = 0
    available: bool = True
    presence: etree._Element | None = None
    interested: bool = False
    directed: set[JID] = field(default_factory=set)

    def send(self, element: etree._Element) -> None: ...

    def send_bytes(self, data: bytes) -> None: ...

    def close(self, condition: str | None = None, text: str | None = None) -> None: ...


def _directory(*sessions: Bound) -> SessionDirectory:
    directory = SessionDirectory()
    for session in sessions:
        directory.add(session)
    return directory


def test_highest_non_negative_priority_wins_and_headlines_go_to_all() -> None:
    phone = Bound(JID.parse("romeo@a.example/phone"), priority=5)
    laptop = Bound(JID.parse("romeo@a.example/laptop"), priority=5)
    tablet = Bound(JID.parse("romeo@a.example/tablet"), priority=1)
    hidden = Bound(JID.parse("romeo@a.example/hidden"), priority=-1)
    away = Bound(JID.parse("romeo@a.example/away"), priority=9, available=False)
    directory = _directory(phone, laptop, tablet, hidden, away)
    romeo = JID.parse("romeo@a.example")
    assert directory.message_targets(romeo, "chat") == [phone, laptop]
    assert directory.message_targets(romeo, "headline") == [phone, laptop, tablet]
    assert directory.message_targets(romeo, "chat", exclude=phone) == [laptop]
    assert directory.message_targets(JID.parse("juliet@a.example"), "chat") == []


def test_one_resource_gets_what_the_general_rule_gives_it() -> None:
    """A single resource takes a shortcut: it must agree with the rule for several resources, written out."""

    def by_the_rule(sessions: list[Bound], mtype: str, exclude: Bound | None) -> list[Bound]:
        found = [s for s in sessions if s.available and s.priority >= 0 and s is not exclude]
        if found and mtype != "headline":
            found = [s for s in found if s.priority == max(f.priority for f in found)]
        return found

    romeo = JID.parse("romeo@a.example")
    for priority in (-5, -1, 0, 3):
        for available in (True, False):
            only = Bound(JID.parse("romeo@a.example/only"), priority=priority, available=available)
            directory = _directory(only)
            for mtype in ("chat", "normal", "headline"):
                for exclude in (None, only):
                    assert directory.message_targets(romeo, mtype, exclude=exclude) == by_the_rule(
                        [only], mtype, exclude)
