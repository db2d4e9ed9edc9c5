"""Stanza routing: addressing checks, the sender's outgoing hooks, then local host, account or remote."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from lxml import etree

from appliance.core import events
from appliance.core.events import StanzaEvent
from appliance.core.iq import IqKey, IqRequest, IqTable, PendingIqs, Scope
from appliance.xmpp.errors import StanzaError, error_reply
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT

if TYPE_CHECKING:
    from appliance.core.accounts import AccountService
    from appliance.core.api import Host
    from appliance.core.federation_policy import FederationPolicy
    from appliance.core.sessions import Session, SessionDirectory

log = logging.getLogger(__name__)

MESSAGE = f"{{{NS_CLIENT}}}message"
PRESENCE = f"{{{NS_CLIENT}}}presence"
IQ = f"{{{NS_CLIENT}}}iq"

class RemoteRoute(Protocol):
    """Where stanzas for other servers' domains go (core/s2s: Federation)."""

    def send(self, element: etree._Element, local: str, remote: str) -> None: ...


LocalService = Callable[[StanzaEvent], Awaitable[None]]
"""A service on its own domain served by this process (conference.<host>, upload.<host>, ...): it gets
every stanza addressed to that domain or a JID under it; a StanzaError it raises is bounced."""


class Router:
    """Moves stanzas between sessions, modules and (later) remote servers and components."""

    def __init__(
        self,
        *,
        hosts: dict[str, Host],
        sessions: SessionDirectory,
        iq_table: IqTable,
        pending: PendingIqs,
        accounts: AccountService,
        federation: FederationPolicy | None = None,
    ) -> None:
        self.hosts = hosts
        self.federation = federation  # which remote domains we may send to ([federation])
        self.sessions = sessions
        self.iq_table = iq_table
        self.pending = pending
        self.accounts = accounts
        self.services: dict[str, LocalService] = {}
        self.remote: RemoteRoute | None = None  # federation, when on (attach_remote)

    def attach_remote(self, remote: RemoteRoute | None) -> None:
        """Send stanzas for other domains to `remote` (the federation needs the router too, so it comes
        after construction)."""
        self.remote = remote

    def is_served(self, domain: str) -> bool:
        """A domain this process answers for: a virtual host or a service domain (conference. ...)."""
        return domain in self.hosts or domain in self.services

    def is_local(self, domain: str) -> bool:
        return domain in self.hosts

    def add_service(self, domain: str, service: LocalService) -> Callable[[], None]:
        """Serve `domain` (a prepared domain that is not a virtual host) in this process; returns the undo."""
        if domain in self.hosts or domain in self.services:
            raise RuntimeError(f"the domain {domain} is already served")
        self.services[domain] = service

        def remove() -> None:
            if self.services.get(domain) is service:
                del self.services[domain]

        return remove

    async def route(self, stanza: etree._Element, *, origin: Session | None) -> None:
        """Route one stanza; `origin` is the local client session it came from, if any."""
        try:
            from_jid = origin.jid if origin is not None else JID.parse(stanza.get("from", ""))
        except JIDError:
            log.warning("dropping a server-originated stanza without a valid 'from': %s", stanza.get("from"))
            return
        tag = stanza.tag
        to_attr = stanza.get("to")
        try:
            to_jid = JID.parse(to_attr) if to_attr is not None else None if tag == PRESENCE else from_jid.bare()
        except JIDError:
            await self.bounce(stanza, StanzaError.jid_malformed("The 'to' address is not a valid JID"))
            return
        event = StanzaEvent(stanza, from_jid, to_jid, origin)
        if origin is not None:
            sender_host = self.hosts.get(from_jid.domain)
            name = events.MESSAGE_OUTGOING if tag == MESSAGE else events.PRESENCE_OUTGOING
            if sender_host is not None and tag != IQ and await sender_host.hooks.fire(name, event):
                return
        if to_jid is None:
            return
        service = self.services.get(to_jid.domain)
        if service is not None:
            try:
                await service(event)
            except StanzaError as err:
                await self.bounce(stanza, err)
            return
        host = self.hosts.get(to_jid.domain)
        if host is None:
            await self._route_remote(event)
            return
        try:
            await self._route_local(host, event)
        except StanzaError as err:
            await self.bounce(stanza, err)

    async def _route_local(self, host: Host, event: StanzaEvent) -> None:
        stanza, to_jid = event.stanza, event.to_jid
        tag = stanza.tag
        if to_jid.local is None:
            await self._to_server(host, event)
            return
        if await host.hooks.fire(events.STANZA_INBOUND_GUARD, event):
            return
        if tag == IQ:
            await self._iq_to_account(host, event)
        elif tag == MESSAGE:
            name = events.MESSAGE_FULL if to_jid.resource is not None else events.MESSAGE_BARE
            handled = await host.hooks.fire(name, event)
            if not handled and stanza.get("type") not in ("error", "headline", "groupchat"):
                raise StanzaError.service_unavailable()
        elif tag == PRESENCE:
            name = events.PRESENCE_FULL if to_jid.resource is not None else events.PRESENCE_BARE
            await host.hooks.fire(name, event)

    async def _to_server(self, host: Host, event: StanzaEvent) -> None:
        stanza = event.stanza
        if stanza.tag == IQ:
            if event.to_jid.resource is not None:
                raise StanzaError.service_unavailable()
            await self._dispatch_iq(host, Scope.SERVER, event)
        elif stanza.tag == MESSAGE:
            handled = await host.hooks.fire(events.MESSAGE_HOST, event)
            if not handled and stanza.get("type") not in ("error", "headline", "groupchat"):
                raise StanzaError.service_unavailable()
        else:
            await host.hooks.fire(events.PRESENCE_HOST, event)

    async def _iq_to_account(self, host: Host, event: StanzaEvent) -> None:
        stanza, to_jid = event.stanza, event.to_jid
        if to_jid.resource is not None:
            target = self.sessions.get(to_jid)
            if target is not None:
                target.send(stanza)
            elif stanza.get("type") in ("get", "set"):
                raise StanzaError.service_unavailable()
            return
        if stanza.get("type") not in ("get", "set"):
            # Answers to IQs the server sent on the account's behalf (push notifications, XEP-0357);
            # any other result or error to a bare JID has nobody to go to.
            self.pending.resolve(stanza)
            return
        answers_missing = len(stanza) == 1 and self.iq_table.answers_missing(
            IqKey(host.name, Scope.ACCOUNT, stanza.get("type", ""), stanza[0].tag)
        )
        if not answers_missing and not self.sessions.count_for(to_jid) and not await self.accounts.exists(to_jid):
            raise StanzaError.service_unavailable()
        scope = Scope.ACCOUNT
        if stanza.get("to") is None and len(stanza) == 1:
            # RFC 6120 §10.3.3: no 'to' means the server answers on the account's behalf; features
            # only the server implements (ping, version, time...) are answered by the server.
            payload_tag = stanza[0].tag
            if not self.iq_table.has_payload(host.name, Scope.ACCOUNT, payload_tag) and self.iq_table.has_payload(
                host.name, Scope.SERVER, payload_tag
            ):
                scope = Scope.SERVER
        await self._dispatch_iq(host, scope, event)

    async def _dispatch_iq(self, host: Host, scope: Scope, event: StanzaEvent) -> None:
        stanza = event.stanza
        iq_type = stanza.get("type")
        if iq_type in ("result", "error"):
            self.pending.resolve(stanza)
            return
        if iq_type not in ("get", "set") or len(stanza) != 1:
            raise StanzaError.bad_request("An IQ get or set carries exactly one payload element")
        payload = stanza[0]
        request = IqRequest(stanza, payload, event.from_jid, event.to_jid, event.session)
        result = await self.iq_table.dispatch(IqKey(host.name, scope, iq_type, payload.tag), request)
        reply = etree.Element(IQ, nsmap={None: NS_CLIENT})
        reply.set("type", "result")
        reply.set("id", stanza.get("id", ""))
        reply.set("to", str(event.from_jid))
        if stanza.get("to") is not None:
            reply.set("from", stanza.get("to", ""))
        if result is not None:
            reply.append(result)
        await self.deliver_reply(reply, event)

    async def deliver_reply(self, reply: etree._Element, event: StanzaEvent) -> None:
        """Send a reply to the requester: straight to its session when local, else through routing."""
        if event.session is not None and event.from_jid == event.session.jid:
            event.session.send(reply)
            return
        if reply.get("from") is None:
            reply.set("from", str(event.to_jid))
        await self.route(reply, origin=None)

    async def _route_remote(self, event: StanzaEvent) -> None:
        stanza = event.stanza
        # The federation policy comes before any s2s routing: a refused stanza never leaves the server.
        policy = self.federation
        refusal = policy.refusal(event.to_jid.domain) if policy is not None else None
        if refusal is not None:
            log.info("not sending %s from %s to %s: %s", etree.QName(stanza).localname, event.from_jid,
                     event.to_jid.domain, refusal.text)
            if not policy.silent:  # type: ignore[union-attr]  # a refusal comes from a policy
                await self.bounce(stanza, refusal.stanza_error())
            return
        to_jid = event.to_jid
        if self.remote is not None and to_jid is not None and self.is_served(event.from_jid.domain):
            if stanza.get("from") is None:
                stanza.set("from", str(event.from_jid))
            self.remote.send(stanza, event.from_jid.domain, to_jid.domain)
            return
        # Without federation (or from a domain we do not serve) remote domains are unreachable.
        if stanza.tag == PRESENCE and stanza.get("type") not in (None, "probe"):
            return
        await self.bounce(stanza, StanzaError.remote_server_not_found())

    async def bounce(self, stanza: etree._Element, err: StanzaError) -> None:
        """Answer a stanza with an error, unless it is itself an error (never answer errors)."""
        if stanza.get("type") == "error":
            return
        if stanza.tag == PRESENCE and stanza.get("type") not in (None, "unavailable", "probe", "subscribe"):
            return
        reply = error_reply(stanza, err)
        if reply.get("from") is None:
            # No 'to' on the original: the server answers for the sender's own account.
            try:
                reply.set("from", str(JID.parse(stanza.get("from", "")).bare()))
            except JIDError:
                return
        try:
            to_jid = JID.parse(reply.get("to", ""))
        except JIDError:
            return
        session = self.sessions.get(to_jid) if to_jid.resource else None
        if session is not None:
            session.send(reply)
        elif to_jid.domain in self.hosts and to_jid.resource is None:
            return  # nobody to tell
        else:
            await self.route(reply, origin=None)
