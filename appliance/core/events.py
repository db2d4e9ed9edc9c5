"""The hook bus: named events with prioritised handlers (`fire` stops at the first True, `fold` threads a value)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from appliance.xmpp.errors import StanzaError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Priority bands, highest runs first.
GUARD = 1000
TRANSFORM = 500
ARCHIVE = 100
NORMAL = 0
DELIVER = -100
FALLBACK = -1000

# Event names (payload type in brackets).
MESSAGE_OUTGOING = "message/outgoing"  # [StanzaEvent] a local user sends a message (sender's host)
MESSAGE_BARE = "message/bare"  # [StanzaEvent] to a local account's bare JID
MESSAGE_FULL = "message/full"  # [StanzaEvent] to a local full JID
MESSAGE_HOST = "message/host"  # [StanzaEvent] to the server itself
PRESENCE_OUTGOING = "presence/outgoing"  # [StanzaEvent] presence sent by a local user
PRESENCE_BARE = "presence/bare"  # [StanzaEvent] to a local account's bare JID
PRESENCE_FULL = "presence/full"  # [StanzaEvent] to a local full JID
PRESENCE_HOST = "presence/host"  # [StanzaEvent] to the server itself
STANZA_INBOUND_GUARD = "stanza/inbound"  # [StanzaEvent] before local delivery to an account (blocking)
SESSION_BOUND = "session/bound"  # [SessionEvent]
PRESENCE_INITIAL = "presence/initial"  # [SessionEvent] the session just sent its initial presence
PRESENCE_NON_NEGATIVE = "presence/non-negative"  # [SessionEvent] a later presence raised a negative priority to >= 0
SESSION_CLOSED = "session/closed"  # [SessionEvent]
ROSTER_REQUESTED = "roster/requested"  # [SessionEvent] the session fetched its roster
ACCOUNT_DELETED = "account/deleted"  # [AccountEvent]
STREAM_FEATURES = "stream/features"  # fold over list[Element] [FeaturesEvent]
MESSAGE_OFFLINE = "message/offline"  # [StanzaEvent] no resource can take a message: store it (the value
# of modules/message.py OFFLINE_STORE; the core fires it for unacknowledged messages of ended sessions)
SM_UNDELIVERED = "sm/undelivered"  # [StanzaEvent] an unacknowledged message of a session that ended for
# good; True claims it, else the core gives it to another resource or offline storage
BIND2_FEATURES = "bind2/features"  # fold over list[str] [SessionEvent] vars a Bind 2 request may enable
BIND2_ENABLE = "bind2/enable"  # [Bind2Event] a feature element inside a Bind 2 request; True = handled
PUSH_NEEDED = "push/needed"  # [PushEvent] a message waits for an account: stored offline, or held for a
# session that stream management hibernated; the push module (XEP-0357) wakes the account's devices


@dataclass(slots=True)
class StanzaEvent:
    """A stanza on its way: who sent it, where to, and the client session it came from (if any)."""

    stanza: Any  # lxml element
    from_jid: Any  # JID
    to_jid: Any  # JID
    session: Any = None  # ClientSession or None


@dataclass(slots=True)
class PushEvent:
    """A message that is waiting for `user` (bare JID); `session` is the hibernated session, if any."""

    user: Any  # JID
    stanza: Any  # lxml element
    session: Any = None


@dataclass(slots=True)
class SessionEvent:
    session: Any


@dataclass(slots=True)
class Bind2Event:
    """One child of a Bind 2 `<bind/>` (e.g. carbons `<enable/>`); a handler may add to `bound`."""

    session: Any
    element: Any  # lxml element
    bound: Any  # lxml <bound/> element of the answer


@dataclass(slots=True)
class AccountEvent:
    jid: Any


Handler = Callable[[Any], Awaitable[bool | None] | bool | None]
Folder = Callable[[Any, T], Awaitable[T] | T]


class HookBus:
    """Named hooks for one virtual host; registration returns an undo callable."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[int, Callable[..., Any]]]] = {}

    def add(self, name: str, handler: Callable[..., Any], priority: int = NORMAL) -> Callable[[], None]:
        entries = self._handlers.setdefault(name, [])
        entry = (priority, handler)
        entries.append(entry)
        entries.sort(key=lambda e: -e[0])

        def remove() -> None:
            if entry in entries:
                entries.remove(entry)

        return remove

    def has(self, name: str) -> bool:
        return bool(self._handlers.get(name))

    async def fire(self, name: str, payload: Any) -> bool:
        """Run handlers highest priority first; stop and return True at the first that returns True.

        A handler raising StanzaError stops the chain and the error goes to the caller (the router
        answers the sender with it); any other exception is logged and the next handler runs.
        """
        for _priority, handler in self._handlers.get(name, ()):
            try:
                result = handler(payload)
                if inspect.isawaitable(result):
                    result = await result
            except StanzaError:
                raise  # a protocol answer for the sender, turned into an error stanza by the router
            except Exception:
                log.exception("hook %s: handler %s failed", name, getattr(handler, "__qualname__", handler))
                continue
            if result is True:
                return True
        return False

    async def fold(self, name: str, payload: Any, acc: T) -> T:
        """Thread `acc` through every handler: handler(payload, acc) -> new acc."""
        for _priority, handler in self._handlers.get(name, ()):
            try:
                result = handler(payload, acc)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                log.exception("hook %s: handler %s failed", name, getattr(handler, "__qualname__", handler))
                continue
            acc = result
        return acc
