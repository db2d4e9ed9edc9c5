"""ModuleContext hands a module its own options (typed by the module's options dataclass)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config.model import HostConfig, ModulesConfig
from appliance.core.api import Host, Int, Module, ModuleContext, option


@dataclass(frozen=True, slots=True)
class EchoOptions:
    """An example table."""

    times: int = option(1, Int(1, 9), "How often.")


class Echo(Module):
    name = "echo"
    options = EchoOptions

    def setup(self, ctx: ModuleContext[EchoOptions]) -> None:
        self.options = ctx.options  # shadows the class attribute on the instance, as mam/push/upload do


def _context(module: Module, modules: ModulesConfig) -> ModuleContext[EchoOptions]:
    host = Host("example.org", HostConfig(name="example.org", modules=modules))
    return ModuleContext(module, host, config=None, iq_table=None, pending=None,  # type: ignore[arg-type]
                         router=None, sessions=None, stores=None, accounts=None, tasks=None)  # type: ignore[arg-type]


def test_options_are_the_configured_ones_or_the_defaults_and_survive_shadowing() -> None:
    module = Echo()
    ctx = _context(module, ModulesConfig().with_options(EchoOptions(times=3)))
    module.setup(ctx)
    assert module.options == EchoOptions(times=3)
    assert ctx.options == EchoOptions(times=3)  # still found after the instance attribute shadows the class's
    assert _context(Echo(), ModulesConfig()).options == EchoOptions()
