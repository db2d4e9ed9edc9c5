"""SOCKS5 Bytestreams proxy (XEP-0065): the service proxy.<host> tells clients where its SOCKS5 listener
is and joins the two sides of a file transfer when the initiator activates it.

Clients that cannot reach each other directly (Jingle file transfer in Dino, Gajim, Conversations …) both
connect to the listener (relay.py) with the same destination hash, SHA-1(SID + initiator JID + target
JID); the initiator then sends <activate/> here, and the proxy relays bytes between them.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from lxml import etree

from appliance.core.api import (
    OPTIONAL_DOMAIN,
    Duration,
    Int,
    IqRequest,
    ListOf,
    Module,
    ModuleContext,
    Text,
    Xep,
    option,
)
from appliance.core.events import StanzaEvent
from appliance.modules._util import element, serve_service_iq
from appliance.modules.disco import DiscoItems
from appliance.modules.proxy65.relay import Socks5Relay
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_BYTESTREAMS, NS_DISCO_INFO, NS_DISCO_ITEMS

QUERY = f"{{{NS_BYTESTREAMS}}}query"
NAME = "SOCKS5 Bytestreams Service"


def _check_ip(text: str) -> str:
    return str(ipaddress.ip_address(text.strip()))


def _check_host(text: str) -> str:
    return text.strip()


@dataclass(frozen=True, slots=True)
class Proxy65Options:
    """SOCKS5 bytestreams proxy (XEP-0065) at proxy.<host> for direct file transfers between users."""

    domain: str = option("", OPTIONAL_DOMAIN, "Address of the proxy service; empty means proxy.<host>.")
    interfaces: tuple[str, ...] = option((), ListOf(Text('an IP address like "0.0.0.0"', _check_ip)),
        "Addresses the SOCKS5 listener binds; empty means the client listener's ([c2s] interfaces).")
    port: int = option(7777, Int(0, 65535), "Port of the SOCKS5 listener (open it in the firewall); 0 picks "
        "a free one.")
    address: str = option("", Text("a host name or an IP address", _check_host),
        "Host name or address clients connect to; empty means the proxy's domain (it must resolve to this "
        "server, like upload.<host>).")
    pending_timeout: float = option(60.0, Duration(1, 3600),
        "How long a connection may wait for the other side and the activation.")
    max_transfers: int = option(100, Int(1, 100_000), "Transfers relayed at once.")

    # Not `service_domain`: that would put proxy.<host> in the certificate (and ACME orders), which SOCKS5
    # does not use; the name only has to resolve for local clients.
    def proxy_domain(self, host: str) -> str:
        return self.domain or f"proxy.{host}"


class Proxy65(Module):
    """Streamhost queries and activation for accounts of this host; the relay does the bytes."""

    name = "proxy65"
    options = Proxy65Options
    depends = ("disco",)
    implements = (Xep(65, "1.8.2"),)

    def setup(self, ctx: ModuleContext[Proxy65Options]) -> None:
        self.ctx = ctx
        self.options = opts = ctx.options
        self.domain = opts.proxy_domain(ctx.host)
        self.relay = Socks5Relay(pending_timeout=opts.pending_timeout, max_transfers=opts.max_transfers)
        self.items = ctx.optional(DiscoItems)
        ctx.serve_domain(self.domain, self.on_stanza)

    async def start(self) -> None:
        interfaces = self.options.interfaces or self.ctx.config.c2s.interfaces
        try:
            port = await self.relay.listen(interfaces, self.options.port)
        except OSError as exc:  # a port in use must not stop the server; the proxy is simply not offered
            self.ctx.log.error("SOCKS5 proxy for %s cannot listen on port %d: %s", self.domain, self.options.port,
                               exc)
            await self.relay.close()
            return
        self.ctx.log.info("SOCKS5 bytestreams proxy %s on port %d", self.domain, port)
        if self.items is not None:
            self.items.add(self.domain, name=NAME)

    async def stop(self) -> None:
        if self.items is not None:
            self.items.remove(self.domain)
        await self.relay.close()

    # -- stanzas to proxy.<host> ------------------------------------------------------------------

    async def on_stanza(self, event: StanzaEvent) -> None:
        await serve_service_iq(self.ctx, event, self.domain, {
            ("get", f"{{{NS_DISCO_INFO}}}query"): self.disco_info,
            ("get", f"{{{NS_DISCO_ITEMS}}}query"): self.disco_items,
            ("get", QUERY): self.streamhost,
            ("set", QUERY): self.activate,
        })

    async def disco_info(self, request: IqRequest) -> etree._Element:
        if request.payload.get("node"):
            raise StanzaError.item_not_found("No such node")
        query = element(NS_DISCO_INFO)
        etree.SubElement(query, f"{{{NS_DISCO_INFO}}}identity", category="proxy", type="bytestreams", name=NAME)
        for var in (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_BYTESTREAMS):
            etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=var)
        return query

    async def disco_items(self, request: IqRequest) -> etree._Element:
        return element(NS_DISCO_ITEMS)

    def _local_user(self, request: IqRequest) -> JID:
        sender = request.from_jid
        if sender.local is None or sender.domain != self.ctx.host:
            raise StanzaError.forbidden(f"Only accounts of {self.ctx.host} may use this proxy")
        if not self.relay.port:
            raise StanzaError.service_unavailable("The proxy's SOCKS5 listener is not running")
        return sender

    async def streamhost(self, request: IqRequest) -> etree._Element:
        """XEP-0065 §6.3.1: where to connect."""
        self._local_user(request)
        query = element(NS_BYTESTREAMS)
        etree.SubElement(query, f"{{{NS_BYTESTREAMS}}}streamhost", jid=self.domain,
                         host=self.options.address or self.domain, port=str(self.relay.port))
        return query

    async def activate(self, request: IqRequest) -> None:
        """XEP-0065 §6.3.5: the initiator joins its connection to the target's."""
        initiator = self._local_user(request)
        sid = request.payload.get("sid") or ""
        target_text = request.payload.findtext(f"{{{NS_BYTESTREAMS}}}activate") or ""
        if not sid or not target_text:
            raise StanzaError.bad_request("<query/> needs a 'sid' and an <activate/> target")
        try:
            target = JID.parse(target_text.strip())
        except JIDError:
            raise StanzaError.jid_malformed("The <activate/> target is not a JID") from None
        destination = hashlib.sha1(f"{sid}{initiator}{target}".encode()).hexdigest()  # XEP-0065 §5.3.2
        if not self.relay.activate(destination):
            raise StanzaError.item_not_found("Both sides of this stream must be connected before activation")
        return None
