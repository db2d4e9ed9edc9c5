"""XMPP Ping (XEP-0199): the server answers pings addressed to itself."""

from __future__ import annotations

from appliance.core.api import IqRequest, Module, ModuleContext, Scope, Xep
from appliance.xmpp.ns import NS_PING


class Ping(Module):
    """Replies with an empty result to a ping sent to the server's domain (client pings to a full JID
    are routed to that client by the router)."""

    name = "ping"
    implements = (Xep(199, "2.0.1"),)

    def setup(self, ctx: ModuleContext) -> None:
        ctx.iq("get", f"{{{NS_PING}}}ping", self.pong, scope=Scope.SERVER)

    async def pong(self, request: IqRequest) -> None:
        return None
