"""Contact addresses for the service (XEP-0157), published as a disco#info extension form."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from lxml import etree

from appliance.core.api import Module, ModuleContext, Xep
from appliance.modules._util import element
from appliance.xmpp.ns import NS_DATA, NS_SERVERINFO


class ContactAddresses(Module):
    """Adds the `http://jabber.org/network/serverinfo` form to the server's disco#info."""

    name = "contact_addresses"
    implements = (Xep(157, "1.1.0", status="partial", note="status-addresses is not configurable"),)
    depends = ("disco",)

    def setup(self, ctx: ModuleContext) -> None:
        self.form = serverinfo_form(ctx.options)
        ctx.disco_extension(self.provide_form)

    def provide_form(self) -> etree._Element | None:
        return self.form


def serverinfo_form(addresses: Any) -> etree._Element | None:
    """The XEP-0128 form for the configured addresses (config `ContactAddresses`), None when none is set.

    Each option `<role>` becomes the list-multi field `<role>-addresses`, in the order of the config
    dataclass, and roles without addresses are left out.
    """
    if addresses is None:
        return None
    roles = [(f.name, tuple(getattr(addresses, f.name))) for f in fields(addresses)]
    roles = [(role, uris) for role, uris in roles if uris]
    if not roles:
        return None
    form = element(NS_DATA, "x")
    form.set("type", "result")
    _field(form, "FORM_TYPE", (NS_SERVERINFO,), "hidden")
    for role, uris in roles:
        _field(form, f"{role}-addresses", uris, "list-multi")
    return form


def _field(form: etree._Element, var: str, values: tuple[str, ...], type_: str) -> None:
    field = etree.SubElement(form, f"{{{NS_DATA}}}field", var=var, type=type_)
    for value in values:
        etree.SubElement(field, f"{{{NS_DATA}}}value").text = value


__all__ = ["ContactAddresses", "serverinfo_form"]
