"""The hook bus: named events with prioritised handlers (`fire` stops at the first True, `fold` threads a value)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from appliance.xmpp.errors import StanzaError

if TYPE_CHECKING:
    from lxml import etree

    from appliance.core.c2s.session import ClientSession
    from appliance.xmpp.jid import JID

log = logging.getLogger(__name__)

T = TypeVar("T")
P = TypeVar("P")

# Priority bands, highest runs first.
GUARD = 1000
TRANSFORM = 500
ARCHIVE = 100
NORMAL = 0
DELIVER = -100
FALLBACK = -1000


class Event(str, Generic[P]):
    """An event name that carries its payload type: `Event("message/bare", StanzaEvent)`.

    It is the name itself (a str), so the bus keys and logs stay plain strings; the payload type lets
    `ModuleContext.hook`/`fire` be checked statically, and `ModuleContext.fire` refuses a wrong payload.
    """

    payload: type[P]

    def __new__(cls, name: str, payload: type[P]) -> Event[P]:
        event = super().__new__(cls, name)
        event.payload = payload
        return event


@dataclass(slots=True)
class StanzaEvent:
    """A stanza on its way: who sent it, where to, and the client session it came from (if any)."""

    stanza: etree._Element
    from_jid: JID
    to_jid: JID | None  # None only for a presence without 'to' (a broadcast)
    session: ClientSession | None = None


@dataclass(slots=True)
class PushEvent:
    """A message that is waiting for `user` (bare JID); `session` is the hibernated session, if any."""

    user: JID
    stanza: etree._Element
    session: ClientSession | None = None


@dataclass(slots=True)
class SessionEvent:
    """Something happened to one client session."""

    session: ClientSession


@dataclass(slots=True)
class Bind2Event:
    """One child of a Bind 2 `<bind/>` (e.g. carbons `<enable/>`); a handler may add to `bound`."""

    session: ClientSession
    element: etree._Element
    bound: etree._Element  # the <bound/> element of the answer


@dataclass(slots=True)
class AccountEvent:
    """Something happened to one account (its bare JID)."""

    jid: JID


# Event names with their payload types.
MESSAGE_OUTGOING = Event("message/outgoing", StanzaEvent)  # a local user sends a message (sender's host)
MESSAGE_BARE = Event("message/bare", StanzaEvent)  # to a local account's bare JID
MESSAGE_FULL = Event("message/full", StanzaEvent)  # to a local full JID
MESSAGE_HOST = Event("message/host", StanzaEvent)  # to the server itself
PRESENCE_OUTGOING = Event("presence/outgoing", StanzaEvent)  # presence sent by a local user
PRESENCE_BARE = Event("presence/bare", StanzaEvent)  # to a local account's bare JID
PRESENCE_FULL = Event("presence/full", StanzaEvent)  # to a local full JID
PRESENCE_HOST = Event("presence/host", StanzaEvent)  # to the server itself
STANZA_INBOUND_GUARD = Event("stanza/inbound", StanzaEvent)  # before local delivery to an account (blocking)
SESSION_BOUND = Event("session/bound", SessionEvent)
PRESENCE_INITIAL = Event("presence/initial", SessionEvent)  # the session just sent its initial presence
# a later presence raised a negative priority to >= 0
PRESENCE_NON_NEGATIVE = Event("presence/non-negative", SessionEvent)
SESSION_CLOSED = Event("session/closed", SessionEvent)
ROSTER_REQUESTED = Event("roster/requested", SessionEvent)  # the session fetched its roster
ACCOUNT_DELETED = Event("account/deleted", AccountEvent)
STREAM_FEATURES = Event("stream/features", SessionEvent)  # fold over list[Element]
# No resource can take a message: store it (modules/message.py fires it; the core fires it for
# unacknowledged messages of ended sessions).
MESSAGE_OFFLINE = Event("message/offline", StanzaEvent)
# An unacknowledged message of a session that ended for good (to_jid: that session's full JID); True
# claims it, else the core gives it to another resource or offline storage.
SM_UNDELIVERED = Event("sm/undelivered", StanzaEvent)
BIND2_FEATURES = Event("bind2/features", SessionEvent)  # fold over list[str]: vars a Bind 2 request may enable
BIND2_ENABLE = Event("bind2/enable", Bind2Event)  # a feature element inside a Bind 2 request; True = handled
# A message waits for an account: stored offline, or held for a session that stream management
# hibernated; the push module (XEP-0357) wakes the account's devices.
PUSH_NEEDED = Event("push/needed", PushEvent)


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
        handled = self.fire_now(name, payload)
        return handled if handled.__class__ is bool else await handled  # type: ignore[misc]

    def fire_now(self, name: str, payload: Any) -> bool | Awaitable[bool]:
        """`fire` as far as it goes without waiting: a bool when no handler had to wait (the routing of a
        stanza to an online user, cached privacy lists), else the rest of the chain to await, starting at
        the first handler that waits (unstarted: what waits runs in the awaiting task)."""
        return _run(name, payload, self._handlers.get(name, ()))

    async def fold(self, name: str, payload: Any, acc: T) -> T:
        """Thread `acc` through every handler: handler(payload, acc) -> new acc."""
        for _priority, handler in self._handlers.get(name, ()):
            try:
                result = handler(payload, acc)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                _log_failure(name, handler)
                continue
            acc = result
        return acc


def _log_failure(name: str, handler: object) -> None:
    log.exception("hook %s: handler %s failed", name, getattr(handler, "__qualname__", handler))


def _run(name: str, payload: Any, handlers: Sequence[tuple[int, Callable[..., Any]]]) -> bool | Awaitable[bool]:
    """The handlers in turn up to the first True, without waiting; from one that waits on, an awaitable."""
    for index, (_priority, handler) in enumerate(handlers):
        try:
            result = handler(payload)
        except StanzaError:
            raise  # a protocol answer for the sender, turned into an error stanza by the router
        except Exception:
            _log_failure(name, handler)
            continue
        if result is True:
            return True
        # Most handlers answer at once (a plain handler, or an async-capable one whose data is cached):
        # only a result that is neither a bool nor None can be awaitable. This runs a few times per routed
        # stanza; inspect.isawaitable costs an ABC check on a bool.
        if result is not None and result.__class__ is not bool and inspect.isawaitable(result):
            return _run_after(name, payload, handler, result, handlers[index + 1 :])
    return False


async def _run_after(
    name: str, payload: Any, handler: Callable[..., Any], waiting: Awaitable[Any],
    rest: Sequence[tuple[int, Callable[..., Any]]],
) -> bool:
    """The chain from a handler that had to wait: its answer, then the handlers after it."""
    try:
        if await waiting is True:
            return True
    except StanzaError:
        raise
    except Exception:
        _log_failure(name, handler)
    handled = _run(name, payload, rest)
    return handled if handled.__class__ is bool else await handled  # type: ignore[misc]
