"""IQ dispatch: one handler per (host, scope, type, payload element), plus the tracker for IQs we send."""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lxml import etree

from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID

if TYPE_CHECKING:
    from appliance.core.sessions import Session

log = logging.getLogger(__name__)


class Scope(enum.Enum):
    """Who an IQ is addressed to: the server itself, or an account's bare JID (or no 'to')."""

    SERVER = "server"
    ACCOUNT = "account"


@dataclass(slots=True)
class IqRequest:
    """An incoming get/set IQ."""

    stanza: etree._Element
    payload: etree._Element
    from_jid: JID
    to_jid: JID  # the server's domain or the account's bare JID the request is about
    session: Session | None  # the sender's own client session, when local

    @property
    def type(self) -> str:
        return self.stanza.get("type", "")

    @property
    def is_self(self) -> bool:
        """The request concerns the sender's own account."""
        return self.from_jid.local == self.to_jid.local and self.from_jid.domain == self.to_jid.domain


IqHandler = Callable[[IqRequest], Awaitable[etree._Element | None]]


@dataclass(frozen=True, slots=True)
class IqKey:
    host: str
    scope: Scope
    type: str
    tag: str  # Clark notation of the payload element


class IqTable:
    """The handler table; a duplicate registration is a start-up error naming both owners."""

    __slots__ = ("_any_account", "_handlers")

    def __init__(self) -> None:
        self._handlers: dict[IqKey, tuple[str, IqHandler]] = {}
        self._any_account: set[IqKey] = set()  # account handlers that also answer for missing accounts

    def add(self, key: IqKey, owner: str, handler: IqHandler, *, any_account: bool = False) -> Callable[[], None]:
        existing = self._handlers.get(key)
        if existing is not None:
            raise RuntimeError(f"IQ handler for {key} registered by both {existing[0]} and {owner}")
        self._handlers[key] = (owner, handler)
        if any_account:
            self._any_account.add(key)

        def remove() -> None:
            self._handlers.pop(key, None)
            self._any_account.discard(key)

        return remove

    def answers_missing(self, key: IqKey) -> bool:
        """Whether the handler of `key` answers for a bare JID with no account behind it too."""
        return key in self._any_account

    def find(self, key: IqKey) -> tuple[str, IqHandler] | None:
        return self._handlers.get(key)

    def has_payload(self, host: str, scope: Scope, tag: str) -> bool:
        return any(k.host == host and k.scope is scope and k.tag == tag for k in self._handlers)

    async def dispatch(self, key: IqKey, request: IqRequest) -> etree._Element | None:
        """Run the handler; raises StanzaError (service-unavailable when nobody handles it)."""
        found = self._handlers.get(key)
        if found is None:
            if self.has_payload(key.host, key.scope, key.tag):
                raise StanzaError.bad_request(f"IQ type '{key.type}' is not supported for this element")
            raise StanzaError.service_unavailable()
        owner, handler = found
        try:
            return await handler(request)
        except StanzaError:
            raise
        except Exception:
            log.exception("module %s failed on an IQ %s", owner, key.tag)
            raise StanzaError.internal_server_error() from None


class PendingIqs:
    """IQs the server sent and awaits an answer for (e.g. pings to idle clients)."""

    __slots__ = ("_counter", "_waiting")

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[etree._Element]] = {}
        self._counter = itertools.count(1)

    def new_id(self) -> str:
        return f"parlour-{next(self._counter)}"

    def expect(self, iq_id: str) -> asyncio.Future[etree._Element]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[iq_id] = future
        future.add_done_callback(lambda _f: self._waiting.pop(iq_id, None))
        return future

    def resolve(self, stanza: etree._Element) -> bool:
        future = self._waiting.get(stanza.get("id", ""))
        if future is None or future.done():
            return False
        future.set_result(stanza)
        return True
