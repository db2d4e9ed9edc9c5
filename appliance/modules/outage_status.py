"""Service outage status (XEP-0455): where clients find the service's status document, published as a
disco#info extension form of the server. The document lives elsewhere (it must answer while this server
is down); the administrator names it with `modules.outage_status.addresses`."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from appliance.core.api import WEB_URL, ListOf, Module, ModuleContext, Xep, option
from appliance.modules._util import disco_form
from appliance.xmpp.ns import NS_SOS


@dataclass(frozen=True, slots=True)
class OutageStatusOptions:
    """Service outage status (XEP-0455)."""

    addresses: tuple[str, ...] = option((), ListOf(WEB_URL), "Where clients read the service's status "
                                        "document (JSON, XEP-0455); host it elsewhere than this server so "
                                        "that it answers during an outage. Empty publishes nothing.")


class OutageStatus(Module):
    """Adds the `urn:xmpp:sos:0` form (field `external-status-addresses`) to the server's disco#info."""

    name = "outage_status"
    options = OutageStatusOptions
    implements = (Xep(455, "0.4.0", status="partial", note="external status addresses; no in-band "
                      "status notices"),)
    depends = ("disco",)

    def setup(self, ctx: ModuleContext[OutageStatusOptions]) -> None:
        self.form = disco_form(NS_SOS, (("external-status-addresses", tuple(ctx.options.addresses)),))
        ctx.disco_extension(self.provide_form)

    def provide_form(self) -> etree._Element | None:
        return self.form


__all__ = ["OutageStatus", "OutageStatusOptions"]
