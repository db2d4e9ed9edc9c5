"""External service discovery (XEP-0215): STUN/TURN servers with short-lived TURN credentials.

Credentials follow the TURN REST shared-secret scheme that coturn (`use-auth-secret`) and others
implement: username = "<expiry unix time>:<bare JID>", password = base64(HMAC-SHA1(secret, username)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lxml import etree

from appliance.core.api import (
    SECRET,
    SERVICE_URI,
    BuiltinTurn,
    Duration,
    IqRequest,
    ListOf,
    Module,
    ModuleContext,
    Xep,
    option,
)
from appliance.modules._util import element
from appliance.util.timestamps import format_datetime
from appliance.util.turn_rest import rest_credentials
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_EXTDISCO

_DEFAULT_PORTS = {"stun": 3478, "turn": 3478, "stuns": 5349, "turns": 5349}


@dataclass(frozen=True, slots=True)
class ExternalService:
    """One configured server, from a URI such as "turn:turn.example.org:3478?transport=udp"."""

    type: str  # stun, stuns, turn, turns
    host: str
    port: int
    transport: str
    secret: str = ""  # the built-in server's own; "": the module's `secret` option

    @classmethod
    def parse(cls, uri: str) -> ExternalService:
        scheme, _, rest = uri.partition(":")
        address, _, query = rest.partition("?")
        transport = query.partition("=")[2] or ("tcp" if scheme.endswith("s") else "udp")
        if address.startswith("["):
            host, _, port = address[1:].partition("]")
            port = port.lstrip(":")
        else:
            host, _, port = address.partition(":")
        return cls(scheme, host, int(port) if port else _DEFAULT_PORTS[scheme], transport)

    @property
    def needs_credentials(self) -> bool:
        return self.type in ("turn", "turns")


def turn_credentials(secret: str, user: JID, expires: float) -> tuple[str, str]:
    """(username, password) of the TURN REST scheme for `user`'s bare JID, valid until `expires`."""
    return rest_credentials(secret, str(user.bare()), expires)


def builtin_services(turn: BuiltinTurn, host: str) -> list[ExternalService]:
    """What Parlour's own STUN/TURN server offers: STUN, TURN over UDP and TCP, and TURN over TLS."""
    services = [
        ExternalService("stun", host, turn.port, "udp"),
        ExternalService("turn", host, turn.port, "udp", turn.secret),
        ExternalService("turn", host, turn.port, "tcp", turn.secret),
    ]
    if turn.tls_port:
        services.append(ExternalService("turns", host, turn.tls_port, "tcp", turn.secret))
    return services


@dataclass(frozen=True, slots=True)
class ExternalServicesOptions:
    """External service discovery (XEP-0215): STUN/TURN servers for calls, with short-lived TURN credentials."""

    services: tuple[str, ...] = option((), ListOf(SERVICE_URI), "STUN and TURN servers offered to clients.")
    secret: str = option("", SECRET,
        "Shared secret of the TURN server's REST API (coturn: static-auth-secret); empty: TURN servers are listed "
        "without credentials.")
    credential_lifetime: float = option(86400.0, Duration(60, 7 * 86400.0), "How long TURN credentials stay valid.")


class ExternalServices(Module):
    """Answers <services/> and <credentials/> requests from the configured list."""

    name = "external_services"
    options = ExternalServicesOptions
    implements = (Xep(215, "1.0.0"),)

    def setup(self, ctx: ModuleContext[ExternalServicesOptions]) -> None:
        self.ctx = ctx
        self.options = ctx.options
        self.services = [ExternalService.parse(uri) for uri in self.options.services]
        builtin = ctx.optional(BuiltinTurn)
        if builtin is not None:
            self.services += builtin_services(builtin, builtin.host or ctx.host)
        ctx.iq("get", f"{{{NS_EXTDISCO}}}services", self.on_services)
        ctx.iq("get", f"{{{NS_EXTDISCO}}}credentials", self.on_credentials, feature=None)

    async def on_services(self, request: IqRequest) -> etree._Element:
        wanted = request.payload.get("type")
        answer = element(NS_EXTDISCO, "services")
        for service in self.services:
            if wanted in (None, service.type):
                answer.append(self._describe(service, request.from_jid))
        return answer

    async def on_credentials(self, request: IqRequest) -> etree._Element:
        asked = request.payload.find(f"{{{NS_EXTDISCO}}}service")
        if asked is None or not asked.get("host"):
            raise StanzaError.bad_request("<credentials/> names a <service/> with a 'host'")
        port = asked.get("port")
        for service in self.services:
            if (
                service.host == asked.get("host")
                and asked.get("type") in (None, service.type)
                and port in (None, str(service.port))
                and service.needs_credentials
            ):
                answer = element(NS_EXTDISCO, "credentials")
                answer.append(self._describe(service, request.from_jid))
                return answer
        raise StanzaError.item_not_found("No such service needs credentials here")

    def _describe(self, service: ExternalService, user: JID) -> etree._Element:
        entry = etree.Element(f"{{{NS_EXTDISCO}}}service")
        entry.set("type", service.type)
        entry.set("host", service.host)
        entry.set("port", str(service.port))
        entry.set("transport", service.transport)
        secret = service.secret or self.options.secret
        if service.needs_credentials and secret:
            expires = self.ctx.now() + self.options.credential_lifetime
            username, password = turn_credentials(secret, user, expires)
            entry.set("expires", format_datetime(math.ceil(expires), milliseconds=False))
            entry.set("username", username)
            entry.set("password", password)
            entry.set("restricted", "1")
        return entry


__all__ = ["ExternalService", "ExternalServices", "turn_credentials"]
