"""Software Version (XEP-0092): the server's name, version and, if configured, operating system."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from lxml import etree

from appliance import __version__
from appliance.core.api import Bool, IqRequest, Module, ModuleContext, Scope, Xep, option
from appliance.modules._util import element
from appliance.xmpp.ns import NS_VERSION

SOFTWARE_NAME = "Parlour"


@dataclass(frozen=True, slots=True)
class VersionOptions:
    """Software version (XEP-0092)."""

    show_os: bool = option(False, Bool(), "Include the operating system in the answer.")


class Version(Module):
    """Answers jabber:iq:version queries to the server; the OS is shown only with `show_os = true`."""

    name = "version"
    options = VersionOptions
    implements = (Xep(92, "1.1"),)

    def setup(self, ctx: ModuleContext[VersionOptions]) -> None:
        show_os = ctx.options.show_os
        self.os_name = operating_system() if show_os else None
        ctx.iq("get", f"{{{NS_VERSION}}}query", self.query, scope=Scope.SERVER)

    async def query(self, request: IqRequest) -> etree._Element:
        return software_version(self.os_name)


def software_version(os_name: str | None) -> etree._Element:
    """The <query xmlns='jabber:iq:version'/> payload for this build."""
    query = element(NS_VERSION)
    etree.SubElement(query, f"{{{NS_VERSION}}}name").text = SOFTWARE_NAME
    etree.SubElement(query, f"{{{NS_VERSION}}}version").text = __version__
    if os_name:
        etree.SubElement(query, f"{{{NS_VERSION}}}os").text = os_name
    return query


def operating_system() -> str:
    """A short OS description such as "Linux 6.1.0"."""
    return f"{platform.system()} {platform.release()}".strip()

