"""XMPP Ping (XEP-0199): the server answers pings addressed to itself or to an account's bare JID."""

from __future__ import annotations

from appliance.core.api import IqRequest, Module, ModuleContext, Scope, Xep
from appliance.xmpp.ns import NS_PING


class Ping(Module):
    """Replies with an empty result to a ping sent to the server's domain or, on the account's behalf, to
    a bare JID (RFC 6120 §10.3.3); pings to a full JID are routed to that client by the router."""

    name = "ping"
    implements = (Xep(199, "2.0.1"),)

    def setup(self, ctx: ModuleContext) -> None:
        ctx.iq("get", f"{{{NS_PING}}}ping", self.pong, scope=Scope.SERVER)
        ctx.iq("get", f"{{{NS_PING}}}ping", self.pong, scope=Scope.ACCOUNT, feature=None)

    async def pong(self, request: IqRequest) -> None:
        return None
