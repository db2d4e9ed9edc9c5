"""The directory of bound client sessions: who is online, under which resources."""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Protocol

from appliance.xmpp.jid import JID

if TYPE_CHECKING:
    from lxml import etree


class Session(Protocol):
    """What the rest of the server may know about a bound client session."""

    jid: JID  # full JID once bound
    available: bool  # has sent initial presence and not gone unavailable
    priority: int
    presence: etree._Element | None  # last broadcast available presence
    interested: bool  # requested the roster (RFC 6121 "interested resource")
    directed: set[JID]  # entities that got directed presence from this session
    client: str  # the client software as it names itself (SASL2 user-agent, else its caps node); "" unknown

    def send(self, element: etree._Element) -> None: ...

    def send_bytes(self, data: bytes) -> None: ...

    def close(self, condition: str | None = None, text: str | None = None) -> None: ...


class SessionLink(Protocol):
    """Who hears of this process's own sessions besides the directory: a cluster (appliance/cluster) that
    registers them for the other nodes and carries stanzas to the sessions those nodes hold."""

    def bound(self, session: Session) -> None: ...

    def ended(self, session: Session) -> None: ...

    def after_stanza(self, session: Session) -> Awaitable[None] | None:
        """Called once a client's stanza is routed, before stream management counts it: an awaitable
        when what it caused for other nodes is not yet durable in the shared queue."""
        ...


class SessionDirectory:
    """Bound sessions indexed by (host, user) and resource: this process's own and, in a cluster, the
    other nodes' (objects that forward what they are sent; see `mirror`)."""

    __slots__ = ("_by_user", "_count", "link")

    def __init__(self) -> None:
        self._by_user: dict[tuple[str, str], dict[str, Session]] = {}
        self._count = 0
        self.link: SessionLink | None = None  # set by the composition root when clustered

    def __len__(self) -> int:
        return self._count

    def add(self, session: Session) -> None:
        """A session of this process is bound."""
        self.mirror(session)
        if self.link is not None:
            self.link.bound(session)

    def remove(self, session: Session) -> None:
        """A session of this process ended."""
        if self.unmirror(session) and self.link is not None:
            self.link.ended(session)

    def mirror(self, session: Session) -> None:
        """Index `session` without telling the link (a session another node holds)."""
        jid = session.jid
        key = (jid.domain, jid.local or "")
        resources = self._by_user.setdefault(key, {})
        if jid.resource not in resources:
            self._count += 1
        resources[jid.resource or ""] = session

    def unmirror(self, session: Session) -> bool:
        """Drop `session` from the index if it is still the one under its JID; whether it was."""
        jid = session.jid
        key = (jid.domain, jid.local or "")
        resources = self._by_user.get(key)
        if resources is None or resources.get(jid.resource or "") is not session:
            return False
        del resources[jid.resource or ""]
        self._count -= 1
        if not resources:
            del self._by_user[key]
        return True

    def get(self, jid: JID) -> Session | None:
        """The session bound to this full JID."""
        resources = self._by_user.get((jid.domain, jid.local or ""))
        return resources.get(jid.resource or "") if resources else None

    def resources(self, jid: JID) -> list[Session]:
        """All sessions of the account behind `jid` (bare or full)."""
        resources = self._by_user.get((jid.domain, jid.local or ""))
        return list(resources.values()) if resources else []

    def count_for(self, jid: JID) -> int:
        resources = self._by_user.get((jid.domain, jid.local or ""))
        return len(resources) if resources else 0

    def available(self, jid: JID) -> list[Session]:
        """Sessions of the account that are available for presence and message delivery."""
        return [s for s in self.resources(jid) if s.available]

    def message_targets(self, user: JID, mtype: str = "normal", *, exclude: Session | None = None) -> list[Session]:
        """The sessions a message to the bare JID `user` goes to (RFC 6121 §8.5.2.1): available ones with a
        non-negative priority; all of them for headlines, else those with the highest priority."""
        resources = self._by_user.get((user.domain, user.local or ""))
        if not resources:
            return []
        if len(resources) == 1:  # the usual case, once per message: no priorities to compare
            (only,) = resources.values()
            return [only] if only.available and only.priority >= 0 and only is not exclude else []
        found = [s for s in resources.values() if s.available and s.priority >= 0 and s is not exclude]
        if found and mtype != "headline":
            top = max(s.priority for s in found)
            found = [s for s in found if s.priority == top]
        return found

    def all(self) -> Iterator[Session]:
        for resources in list(self._by_user.values()):
            yield from list(resources.values())

    def count_host(self, host: str) -> int:
        return sum(len(r) for (h, _u), r in self._by_user.items() if h == host)
