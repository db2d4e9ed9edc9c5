"""Contact addresses for the service (XEP-0157), published as a disco#info extension form."""

from __future__ import annotations

from dataclasses import dataclass, fields

from lxml import etree

from appliance.core.api import URI, ListOf, Module, ModuleContext, Xep, option
from appliance.modules._util import disco_form
from appliance.xmpp.ns import NS_SERVERINFO


@dataclass(frozen=True, slots=True)
class ContactAddressesOptions:
    """Contact addresses published in service discovery (XEP-0157)."""

    abuse: tuple[str, ...] = option((), ListOf(URI), "Where to reach the abuse contact.")
    admin: tuple[str, ...] = option((), ListOf(URI), "Where to reach the admin contact.")
    feedback: tuple[str, ...] = option((), ListOf(URI), "Where to reach the feedback contact.")
    sales: tuple[str, ...] = option((), ListOf(URI), "Where to reach the sales contact.")
    security: tuple[str, ...] = option((), ListOf(URI), "Where to reach the security contact.")
    support: tuple[str, ...] = option((), ListOf(URI), "Where to reach the support contact.")


class ContactAddresses(Module):
    """Adds the `http://jabber.org/network/serverinfo` form to the server's disco#info."""

    name = "contact_addresses"
    options = ContactAddressesOptions
    implements = (Xep(157, "1.1.0", status="partial", note="status-addresses is not configurable"),)
    depends = ("disco",)

    def setup(self, ctx: ModuleContext[ContactAddressesOptions]) -> None:
        self.form = serverinfo_form(ctx.options)
        ctx.disco_extension(self.provide_form)

    def provide_form(self) -> etree._Element | None:
        return self.form


def serverinfo_form(addresses: ContactAddressesOptions) -> etree._Element | None:
    """The XEP-0128 form for the configured addresses, None when none is set.

    Each option `<role>` becomes the list-multi field `<role>-addresses`, in the order of the config
    dataclass, and roles without addresses are left out.
    """
    roles = ((f"{f.name}-addresses", tuple(getattr(addresses, f.name))) for f in fields(addresses))
    return disco_form(NS_SERVERINFO, roles)


__all__ = ["ContactAddresses", "serverinfo_form"]
