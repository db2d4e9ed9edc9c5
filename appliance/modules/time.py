"""Entity Time (XEP-0202): the server's clock in UTC."""

from __future__ import annotations

from lxml import etree

from appliance.core.api import IqRequest, Module, ModuleContext, Scope, Xep
from appliance.modules._util import element
from appliance.util.timestamps import format_datetime
from appliance.xmpp.ns import NS_TIME

# The server reports UTC with a zero offset: its local time zone says nothing useful to a client and
# would only reveal where the machine is.
UTC_OFFSET = "+00:00"


class EntityTime(Module):
    """Answers urn:xmpp:time queries sent to the server."""

    name = "time"
    implements = (Xep(202, "2.0"),)

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        ctx.iq("get", f"{{{NS_TIME}}}time", self.query, scope=Scope.SERVER)

    async def query(self, request: IqRequest) -> etree._Element:
        return entity_time(self.ctx.now())


def entity_time(now: float) -> etree._Element:
    """The <time xmlns='urn:xmpp:time'/> payload for the POSIX time `now` (XEP-0082 DateTime, UTC)."""
    payload = element(NS_TIME, "time")
    etree.SubElement(payload, f"{{{NS_TIME}}}tzo").text = UTC_OFFSET
    etree.SubElement(payload, f"{{{NS_TIME}}}utc").text = format_datetime(now)
    return payload
