"""In-Band Registration (XEP-0077): account creation before login (when the host's policy allows it, or
with an invitation's token, XEP-0445), password change and account removal after login (always)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from weakref import WeakKeyDictionary

from lxml import etree

from appliance.core import events
from appliance.core.api import (
    AccountExists,
    AccountNotFound,
    Choice,
    Int,
    InvitationDesk,
    IqRequest,
    Module,
    ModuleContext,
    Scope,
    WeakPassword,
    Xep,
    option,
)
from appliance.core.events import AccountEvent
from appliance.storage.api import InvitationStore, RosterStore
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT, NS_DATA, NS_IBR_TOKEN, NS_INVITE, NS_PREAUTH, NS_REGISTER, NS_REGISTER_FEATURE
from appliance.xmpp.stream import C2SState

QUERY = f"{{{NS_REGISTER}}}query"
REMOVE = f"{{{NS_REGISTER}}}remove"
USERNAME = f"{{{NS_REGISTER}}}username"
PASSWORD = f"{{{NS_REGISTER}}}password"
FORM = f"{{{NS_DATA}}}x"
PREAUTH = f"{{{NS_PREAUTH}}}preauth"
PRESENCE = f"{{{NS_CLIENT}}}presence"

RATE_WINDOW = 3600.0
INSTRUCTIONS = "Choose a username and a password to create an account on this server."


class _Transport(Protocol):
    peer_ip: str
    secure: bool
    loopback: bool


class _Stream(Protocol):
    """What registration needs to know about a client stream that has not logged in."""

    state: C2SState
    transport: _Transport


RegistrationPolicy = Literal["closed", "open", "loopback"]


@dataclass(frozen=True, slots=True)
class RegisterOptions:
    """In-band registration (XEP-0077)."""

    policy: RegistrationPolicy = option("closed", Choice.of(RegistrationPolicy),
        "Who may create accounts from a client: nobody, anyone, or clients on this machine.")
    min_password_length: int = option(8, Int(1, 1024), "Shortest password accepted.")
    max_per_ip_per_hour: int = option(5, Int(1, 1_000_000), "Accounts one IP address may register in an hour.")


class Register(Module):
    """jabber:iq:register: sign-up on unauthenticated streams, then password change and cancellation."""

    name = "register"
    options = RegisterOptions
    implements = (Xep(77, "2.4"), Xep(445, "0.2.0", note="invitation tokens from the console, CLI or XEP-0401"))

    def setup(self, ctx: ModuleContext[RegisterOptions]) -> None:
        self.ctx = ctx
        options = ctx.options
        self.policy: str = options.policy
        self.min_password_length: int = options.min_password_length
        self.max_per_hour: int = options.max_per_ip_per_hour
        self.clock: Callable[[], float] = time.monotonic
        self._recent: dict[str, deque[float]] = {}  # peer IP -> times of its recent registrations
        for scope in (Scope.SERVER, Scope.ACCOUNT):  # with or without to='domain'
            ctx.iq("get", QUERY, self.get, scope=scope, feature=None)
            ctx.iq("set", QUERY, self.set, scope=scope, feature=None)
        ctx.feature(NS_REGISTER)
        self.invitations = ctx.optional(InvitationDesk)
        # Streams that presented a valid invitation token (XEP-0445 §4), until they register or close.
        self._tokens: WeakKeyDictionary[Any, str] = WeakKeyDictionary()
        if self.policy != "closed" or self.invitations is not None:
            ctx.preauth_iq(QUERY, self.before_login)
            ctx.stream_feature(self.stream_feature)
            ctx.every(RATE_WINDOW / 4, self._prune, "prune")
        if self.invitations is not None:
            ctx.preauth_iq(PREAUTH, self.on_preauth)
            for namespace in (NS_IBR_TOKEN, NS_INVITE):  # XEP-0445 and XEP-0401's earlier name for it
                ctx.stream_feature(self._invitation_feature(namespace))

    # -- before login -----------------------------------------------------------------------------

    def stream_feature(self, stream: Any) -> etree._Element | None:
        """<register/> among the pre-authentication features, where this stream may register."""
        if stream.state is not C2SState.UNAUTHENTICATED or not self._may_register(stream):
            return None
        return etree.Element(f"{{{NS_REGISTER_FEATURE}}}register", nsmap={None: NS_REGISTER_FEATURE})

    def _invitation_feature(self, namespace: str) -> Callable[[Any], etree._Element | None]:
        def feature(stream: Any) -> etree._Element | None:
            """<register xmlns=namespace/>: this stream may register with an invitation's token."""
            if (stream.state is not C2SState.UNAUTHENTICATED or self.invitations is None
                    or not self.invitations.enabled or not self._channel_safe(stream.transport)):
                return None
            return etree.Element(f"{{{namespace}}}register", nsmap={None: namespace})

        return feature

    def _may_register(self, stream: _Stream) -> bool:
        if self.policy == "closed" or (self.policy == "loopback" and not stream.transport.loopback):
            return False
        return self._channel_safe(stream.transport)

    async def on_preauth(self, iq: etree._Element, stream: _Stream) -> etree._Element | None:
        """XEP-0445 §4: check an invitation's token; a valid one lets this stream register (once)."""
        if iq.get("type") != "set":
            raise StanzaError.bad_request("Send the token in an IQ of type set")
        if not self._channel_safe(stream.transport):
            raise StanzaError.not_authorized("Start TLS before registering")
        token = iq[0].get("token", "")
        assert self.invitations is not None
        if not await self.invitations.valid(token, self.ctx.host):
            raise StanzaError.item_not_found("The provided token is invalid or expired")
        self._tokens[stream] = token
        return None

    def _channel_safe(self, transport: _Transport) -> bool:
        """Passwords travel in the clear inside the stream: only over TLS, unless the admin allows plain."""
        c2s = self.ctx.config.c2s
        if transport.secure or not c2s.require_encryption:
            return True
        return c2s.allow_plaintext_on_loopback and transport.loopback

    async def before_login(self, iq: etree._Element, stream: _Stream) -> etree._Element | None:
        """The pre-authentication IQ handler: registration form (get) or new account (set)."""
        token = self._tokens.get(stream)
        if token is None and self.policy == "closed":  # as if there were no registration at all
            raise StanzaError.service_unavailable()
        if token is None and self.policy == "loopback" and not stream.transport.loopback:
            raise StanzaError.not_allowed("Registration is only open to local connections")
        if not self._channel_safe(stream.transport):
            raise StanzaError.not_authorized("Start TLS before registering")
        if iq.get("type") == "get":
            return _registration_form()
        payload = iq[0]
        if payload.find(REMOVE) is not None:
            raise StanzaError.not_authorized("Log in to cancel a registration")
        username, password = _credentials(payload)
        if not username or not password:
            # XEP-0077 §3.1: missing (or empty) required information is <not-acceptable/>.
            raise StanzaError.not_acceptable("Both a username and a password are required")
        try:
            jid = JID.make(username, self.ctx.host)
        except JIDError:
            raise StanzaError.not_acceptable("That username is not valid") from None
        if token is not None:
            self._check_password(password)
            return await self._redeem(stream, token, username, password)
        ip = stream.transport.peer_ip
        self._check_rate(ip)
        self._check_password(password)
        if self.ctx.is_admin(jid) or await self.ctx.store(InvitationStore).reserved(
                self.ctx.host, jid.local or "", self.ctx.now()):
            # A name in server.admins is reserved: rights are granted by name, so whoever signs up as a
            # deleted administrator would inherit them. Only an administrator may create that account.
            # So is a name an invitation keeps for its invitee (XEP-0445 §5) until it expires.
            raise StanzaError.conflict("That username is taken")
        try:
            await self.ctx.accounts.create(jid, password)
        except AccountExists:
            raise StanzaError.conflict("That username is taken") from None
        except WeakPassword as exc:
            raise StanzaError.not_acceptable(str(exc)) from None
        self._recent.setdefault(ip, deque()).append(self.clock())
        self.ctx.log.info("registered %s from %s", jid, ip)
        return None

    async def _redeem(self, stream: _Stream, token: str, username: str, password: str) -> None:
        """Make the account the stream's invitation allows (no per-address limit: the token is the gate)."""
        assert self.invitations is not None
        try:
            jid = await self.invitations.accept(token, username, password, host=self.ctx.host)
        except AccountExists:
            raise StanzaError.conflict("That username is taken") from None
        except ValueError as exc:
            raise StanzaError.not_acceptable(str(exc)) from None
        self._tokens.pop(stream, None)
        self.ctx.log.info("registered %s with an invitation from %s", jid, stream.transport.peer_ip)

    def _check_rate(self, ip: str) -> None:
        recent = self._recent.get(ip)
        if recent is None:
            return
        horizon = self.clock() - RATE_WINDOW
        while recent and recent[0] < horizon:
            recent.popleft()
        if len(recent) >= self.max_per_hour:
            self.ctx.log.warning("refusing a registration from %s: too many in the last hour", ip)
            text = "Too many accounts registered from your address; try again later"
            raise StanzaError("policy-violation", text, type="wait")

    async def _prune(self) -> None:
        horizon = self.clock() - RATE_WINDOW
        for ip in [ip for ip, times in self._recent.items() if not times or times[-1] < horizon]:
            del self._recent[ip]

    # -- after login --------------------------------------------------------------------------------

    async def get(self, req: IqRequest) -> etree._Element:
        """An authenticated user asks: they are registered, under their username."""
        user = self._own_account(req)
        query = etree.Element(QUERY, nsmap={None: NS_REGISTER})
        etree.SubElement(query, f"{{{NS_REGISTER}}}registered")
        etree.SubElement(query, USERNAME).text = user.local
        return query

    async def set(self, req: IqRequest) -> None:
        """Password change (username + password) or cancellation (<remove/>) of the sender's account."""
        user = self._own_account(req)
        payload = req.payload
        if payload.find(REMOVE) is not None:
            if sum(1 for child in payload if isinstance(child.tag, str)) != 1:
                raise StanzaError.bad_request("<remove/> must be the only child of <query/>")
            await self._remove(user)
            return
        try:
            await self._change_password(req, user)
        except StanzaError as err:
            err.echo = False  # XEP-0077 §3.3: an error about a password change does not repeat the request
            raise

    async def _change_password(self, req: IqRequest, user: JID) -> None:
        """Set the password given with the username of the sender's own account."""
        username, password = _credentials(req.payload)
        if username is None or password is None:
            raise StanzaError.bad_request("A password change needs <username/> and <password/>")
        if username != user.local:
            try:
                same = JID.make(username, user.domain) == user
            except JIDError:
                same = False
            if not same:
                raise StanzaError.forbidden("You can only change your own password")
        if not password:
            raise StanzaError.not_acceptable("The password must not be empty")  # the old one stays
        transport = getattr(req.session, "transport", None)
        if transport is not None and not self._channel_safe(transport):
            raise StanzaError.not_authorized("Change passwords only over an encrypted connection")
        self._check_password(password)
        try:
            await self.ctx.accounts.set_password(user, password)
        except WeakPassword as exc:
            raise StanzaError.not_acceptable(str(exc)) from None
        except AccountNotFound:
            raise StanzaError.registration_required() from None
        self.ctx.log.info("%s changed their password", user)

    def _own_account(self, req: IqRequest) -> JID:
        """The bare JID of the local account sending the request, which must be about itself."""
        sender = req.from_jid
        if req.session is None or sender.local is None or sender.domain != self.ctx.host:
            raise StanzaError.forbidden("Only this server's own users may manage their registration")
        if req.to_jid.local is not None and not req.is_self:
            raise StanzaError.forbidden("You can only manage your own registration")
        return sender.bare()

    def _check_password(self, password: str) -> None:
        if len(password) < self.min_password_length:
            raise StanzaError.not_acceptable(f"Passwords need at least {self.min_password_length} characters")

    async def _remove(self, user: JID) -> None:
        """Cancel the subscriptions, delete the account, answer, then end all of its sessions."""
        if not await self.ctx.accounts.exists(user):
            raise StanzaError.registration_required()
        await self._cancel_subscriptions(user)
        try:
            await self.ctx.accounts.delete(user)
        except AccountNotFound:
            raise StanzaError.registration_required() from None
        self.ctx.log.info("%s cancelled their registration", user)
        await self.ctx.fire(events.ACCOUNT_DELETED, AccountEvent(user))
        # The IQ result is written as soon as this handler returns, before the spawned task first runs,
        # so the client sees the result and then the stream error (XEP-0077 §3.2).
        self.ctx.spawn(self._disconnect(user), "disconnect")

    async def _disconnect(self, user: JID) -> None:
        for session in self.ctx.sessions.resources(user):
            session.close("not-authorized", "The account was deleted")

    async def _cancel_subscriptions(self, user: JID) -> None:
        """XEP-0077 §3.2 / RFC 6121: contacts stop seeing us and stop being seen, before the roster goes."""
        for item in await self.ctx.store(RosterStore).items(user.domain, user.local or ""):
            if item.subscription in ("from", "both"):
                await self._send(user, item.contact, "unavailable")
                await self._send(user, item.contact, "unsubscribed")
            if item.subscription in ("to", "both") or item.ask:
                await self._send(user, item.contact, "unsubscribe")

    async def _send(self, user: JID, contact: str, ptype: str) -> None:
        presence = etree.Element(PRESENCE, nsmap={None: NS_CLIENT})
        presence.set("type", ptype)
        presence.set("from", str(user))
        presence.set("to", contact)
        await self.ctx.route(presence)


def _credentials(payload: etree._Element) -> tuple[str | None, str | None]:
    """Username and password from the legacy fields or from a submitted data form (None: absent)."""
    form = payload.find(FORM)
    if form is not None:
        values: dict[str, str] = {}
        for field in form.findall(f"{{{NS_DATA}}}field"):
            var = field.get("var")
            if var in ("username", "password"):
                values[var] = field.findtext(f"{{{NS_DATA}}}value") or ""
        return values.get("username"), values.get("password")
    username = payload.find(USERNAME)
    password = payload.find(PASSWORD)
    return (
        None if username is None else (username.text or "").strip(),
        None if password is None else password.text or "",
    )


def _registration_form() -> etree._Element:
    """The fields to fill in: legacy <username/> and <password/>, and the same as a data form."""
    query = etree.Element(QUERY, nsmap={None: NS_REGISTER})
    etree.SubElement(query, f"{{{NS_REGISTER}}}instructions").text = INSTRUCTIONS
    etree.SubElement(query, USERNAME)
    etree.SubElement(query, PASSWORD)
    form = etree.SubElement(query, FORM, nsmap={None: NS_DATA})
    form.set("type", "form")
    etree.SubElement(form, f"{{{NS_DATA}}}title").text = "Account registration"
    etree.SubElement(form, f"{{{NS_DATA}}}instructions").text = INSTRUCTIONS
    hidden = etree.SubElement(form, f"{{{NS_DATA}}}field", type="hidden", var="FORM_TYPE")
    etree.SubElement(hidden, f"{{{NS_DATA}}}value").text = NS_REGISTER
    fields = (("username", "Username", "text-single"), ("password", "Password", "text-private"))
    for var, label, kind in fields:
        field = etree.SubElement(form, f"{{{NS_DATA}}}field", type=kind, var=var, label=label)
        etree.SubElement(field, f"{{{NS_DATA}}}required")
    return query
