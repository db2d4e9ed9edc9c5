"""Stanza routing: addressing checks, the sender's outgoing hooks, then local host, account or remote."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

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
        rest = self.route_now(stanza, origin=origin)
        if rest is not None:
            await rest

    def route_now(self, stanza: etree._Element, *, origin: Session | None) -> Awaitable[Any] | None:
        """`route` as far as it goes without waiting: None when the stanza is through (a message to an
        online user, with the hooks' data cached), else the rest of the routing to await. The rest is
        unstarted, so whatever waits (storage, timeouts) runs in the awaiting task."""
        try:
            from_jid = origin.jid if origin is not None else JID.parse(stanza.get("from", ""))
        except JIDError:
            log.warning("dropping a server-originated stanza without a valid 'from': %s", stanza.get("from"))
            return None
        tag = stanza.tag
        to_attr = stanza.get("to")
        try:
            to_jid = JID.parse(to_attr) if to_attr is not None else None if tag == PRESENCE else from_jid.bare()
        except JIDError:
            return self.bounce(stanza, StanzaError.jid_malformed("The 'to' address is not a valid JID"))
        event = StanzaEvent(stanza, from_jid, to_jid, origin)
        if origin is not None and tag != IQ:
            sender_host = self.hosts.get(from_jid.domain)
            if sender_host is not None:
                name = events.MESSAGE_OUTGOING if tag == MESSAGE else events.PRESENCE_OUTGOING
                handled = sender_host.hooks.fire_now(name, event)
                if handled is True:
                    return None
                if handled is not False:  # the sender's outgoing hooks have to wait
                    return self._unless(handled, lambda: self._deliver_now(event))  # type: ignore[arg-type]
        return self._deliver_now(event)

    def _deliver_now(self, event: StanzaEvent) -> Awaitable[Any] | None:
        """To a service domain of this process, a local account or host, or a remote server."""
        to_jid = event.to_jid
        if to_jid is None:
            return None
        service = self.services.get(to_jid.domain)
        if service is not None:
            return self._serve(service, event)
        host = self.hosts.get(to_jid.domain)
        if host is None:
            return self._route_remote(event)
        try:
            rest = self._route_local_now(host, event)
        except StanzaError as err:
            return self.bounce(event.stanza, err)
        return None if rest is None else self._bouncing(rest, event.stanza)

    async def _serve(self, service: LocalService, event: StanzaEvent) -> None:
        try:
            await service(event)
        except StanzaError as err:
            await self.bounce(event.stanza, err)

    async def _bouncing(self, rest: Awaitable[Any], stanza: etree._Element) -> None:
        """Await the rest of a local delivery; a StanzaError it raises is answered to the sender."""
        try:
            await rest
        except StanzaError as err:
            await self.bounce(stanza, err)

    def _route_local_now(self, host: Host, event: StanzaEvent) -> Awaitable[Any] | None:
        if event.to_jid.local is None:  # type: ignore[union-attr]  # set for local delivery
            return self._to_server(host, event)
        guarded = host.hooks.fire_now(events.STANZA_INBOUND_GUARD, event)
        if guarded is True:
            return None
        if guarded is not False:  # the inbound guards (blocking, privacy) have to wait
            return self._unless(guarded, lambda: self._to_account_now(host, event))  # type: ignore[arg-type]
        return self._to_account_now(host, event)

    @staticmethod
    async def _unless(handled: Awaitable[bool], then: Callable[[], Awaitable[Any] | None]) -> None:
        """Once the hooks that had to wait have answered: unless they took the stanza, go on with `then`."""
        if not await handled:
            rest = then()
            if rest is not None:
                await rest

    def _to_account_now(self, host: Host, event: StanzaEvent) -> Awaitable[Any] | None:
        stanza, to_jid = event.stanza, event.to_jid
        tag = stanza.tag
        if tag == IQ:
            return self._iq_to_account(host, event)
        if tag == MESSAGE:
            name = events.MESSAGE_FULL if to_jid.resource is not None else events.MESSAGE_BARE  # type: ignore[union-attr]
            handled = host.hooks.fire_now(name, event)
            if handled.__class__ is not bool:
                return self._message_handled(handled, stanza)  # type: ignore[arg-type]
            _check_message_handled(bool(handled), stanza)
        elif tag == PRESENCE:
            name = events.PRESENCE_FULL if to_jid.resource is not None else events.PRESENCE_BARE  # type: ignore[union-attr]
            fired = host.hooks.fire_now(name, event)
            if fired.__class__ is not bool:
                return fired  # type: ignore[return-value]
        return None

    @staticmethod
    async def _message_handled(handled: Awaitable[bool], stanza: etree._Element) -> None:
        _check_message_handled(await handled, stanza)

    async def _to_server(self, host: Host, event: StanzaEvent) -> None:
        stanza = event.stanza
        if stanza.tag == IQ:
            if event.to_jid.resource is not None:
                raise StanzaError.service_unavailable()
            await self._dispatch_iq(host, Scope.SERVER, event)
        elif stanza.tag == MESSAGE:
            _check_message_handled(await host.hooks.fire(events.MESSAGE_HOST, event), stanza)
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


def _check_message_handled(handled: bool, stanza: etree._Element) -> None:
    """A message no handler took is answered service-unavailable, unless it asks for no answer."""
    if not handled and stanza.get("type") not in ("error", "headline", "groupchat"):
        raise StanzaError.service_unavailable()
