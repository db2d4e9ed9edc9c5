"""Hook events carry their payload type; the bus keys them by name."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from appliance.config.model import HostConfig
from appliance.core import events
from appliance.core.api import Host, Module, ModuleContext
from appliance.core.events import AccountEvent, Event, HookBus, SessionEvent, StanzaEvent
from appliance.xmpp.jid import JID


def test_every_event_names_a_slotted_payload_dataclass() -> None:
    found = [v for v in vars(events).values() if isinstance(v, Event)]
    assert len(found) >= 20
    assert len({str(e) for e in found}) == len(found)  # no two events share a name
    for event in found:
        assert event.payload in (StanzaEvent, SessionEvent, AccountEvent, events.PushEvent, events.Bind2Event)
        assert not hasattr(event.payload(*[None] * len(event.payload.__slots__)), "__dict__")


async def test_an_event_is_its_name_on_the_bus() -> None:
    bus = HookBus()
    seen: list[object] = []
    bus.add("account/deleted", seen.append)
    payload = AccountEvent(JID.parse("a@example.org"))
    assert await bus.fire(events.ACCOUNT_DELETED, payload) is False
    assert seen == [payload]


async def test_module_context_refuses_a_payload_of_the_wrong_type() -> None:
    class Probe(Module):
        name = "probe"

    host = Host("example.org", HostConfig(name="example.org"))
    ctx = ModuleContext(Probe(), host, config=None, iq_table=None, pending=None,  # type: ignore[arg-type]
                        router=None, sessions=None, stores=None, accounts=None, tasks=None)  # type: ignore[arg-type]
    seen: list[AccountEvent] = []
    ctx.hook(events.ACCOUNT_DELETED, seen.append)
    with pytest.raises(TypeError, match="account/deleted carries AccountEvent, not SessionEvent"):
        await ctx.fire(events.ACCOUNT_DELETED, SessionEvent(None))  # type: ignore[arg-type]
    await ctx.fire(events.ACCOUNT_DELETED, AccountEvent(JID.parse("a@example.org")))
    assert len(seen) == 1


async def test_fire_treats_plain_and_awaitable_answers_alike() -> None:
    """Handlers may answer at once or with an awaitable (the bus checks plain answers first, for speed):
    True stops the chain either way; False, None and any other plain value let the next handler run."""

    async def later(answer: object) -> object:
        await asyncio.sleep(0)
        return answer

    def future_of(answer: object) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.set_result(answer)
        return future

    def handler(seen: list[str], name: str, answer: object, make: Callable[[object], object]) -> Callable[..., object]:
        def handle(_payload: object) -> object:
            seen.append(name)
            return make(answer)

        return handle

    for make in (lambda answer: answer, later, future_of):
        bus = HookBus()
        seen: list[str] = []
        for name, answer in (("false", False), ("none", None), ("other", "yes"), ("true", True), ("after", True)):
            bus.add("x", handler(seen, name, answer, make))
        assert await bus.fire("x", None) is True
        assert seen == ["false", "none", "other", "true"]  # in order, up to the first True
        bus = HookBus()
        bus.add("x", handler(seen, "alone", False, make))
        assert await bus.fire("x", None) is False


async def test_fire_now_answers_at_once_while_no_handler_waits() -> None:
    bus = HookBus()
    seen: list[str] = []
    bus.add("x", lambda _p: seen.append("first"))
    bus.add("x", lambda _p: seen.append("second") or True)
    bus.add("x", lambda _p: seen.append("never"))
    assert bus.fire_now("x", None) is True
    assert seen == ["first", "second"]
    assert bus.fire_now("nobody", None) is False


async def test_fire_now_hands_back_the_rest_of_the_chain_from_the_first_handler_that_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Handlers after the waiting one run only when the answer is awaited, in order; a StanzaError
    still reaches the awaiting caller and any other failure is logged and skipped, as with `fire`."""
    from appliance.xmpp.errors import StanzaError

    bus = HookBus()
    seen: list[str] = []

    async def waits(_payload: object) -> bool:
        await asyncio.sleep(0)
        seen.append("waited")
        return False

    def broken(_payload: object) -> bool:
        seen.append("broken")
        raise RuntimeError("a bug in a module")

    def refuses(_payload: object) -> bool:
        seen.append("refuses")
        raise StanzaError.forbidden()

    async def fails_later(_payload: object) -> bool:
        await asyncio.sleep(0)
        seen.append("failed")
        raise RuntimeError("a bug after a wait")

    bus.add("x", lambda _p: seen.append("plain"))
    bus.add("x", fails_later)
    bus.add("x", waits)
    bus.add("x", broken)
    bus.add("x", lambda _p: seen.append("last") or True)
    rest = bus.fire_now("x", None)
    assert seen == ["plain"]  # the waiting handler has not run yet
    assert not isinstance(rest, bool)
    with caplog.at_level(logging.ERROR, logger="appliance.core.events"):
        assert await rest is True
    assert seen == ["plain", "failed", "waited", "broken", "last"]
    # a failure after a wait names its handler, like one before
    assert [r.getMessage() for r in caplog.records] == [
        f"hook x: handler {name} failed" for name in (fails_later.__qualname__, broken.__qualname__)
    ]

    bus = HookBus()
    bus.add("y", waits)
    bus.add("y", refuses)
    rest = bus.fire_now("y", None)
    with pytest.raises(StanzaError):
        await rest  # type: ignore[misc]
