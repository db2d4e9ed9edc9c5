"""Hook events carry their payload type; the bus keys them by name."""

from __future__ import annotations

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
