"""What the composition root attaches to modules from outside (XmppCore.wire_modules: a cluster's room
leases, its caps listener) follows a reload that makes the modules anew: undone on the old modules first,
then applied to the new ones."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from appliance.core.server import Unwire
from appliance.modules.caps import Capabilities
from tests.integration.harness import start_harness


async def test_wiring_is_undone_on_the_old_modules_and_applied_to_the_new(tmp_path: Path) -> None:
    harness = await start_harness(tmp_path)
    core = harness.server.core
    assert core is not None
    host = core.hosts[harness.domain]
    seen: list[tuple[str, Capabilities]] = []

    def wire() -> Unwire:
        caps = host.services[Capabilities]
        seen.append(("on", caps))

        async def unwire() -> None:
            seen.append(("off", caps))

        return unwire

    try:
        core.wire_modules(wire)
        first = host.services[Capabilities]
        assert seen == [("on", first)]
        config = core.config
        hosts = tuple(replace(h, modules=replace(h.modules, disabled=(*h.modules.disabled, "version")))
                      for h in config.hosts)
        assert await harness.server.reload(replace(config, hosts=hosts)) == []
        second = host.services[Capabilities]
        assert second is not first  # the modules were made anew
        assert seen == [("on", first), ("off", first), ("on", second)]
        await harness.server.reload(core.config)  # nothing about the modules changed: they stay
        assert len(seen) == 3
    finally:
        await harness.close()
