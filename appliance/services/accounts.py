"""Accounts as administrators manage them (console, API, CLI): create, reset, delete, disconnect, list."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from appliance.core.accounts import (
    AccountExists,
    AccountNotFound,
    AccountService,
    DirectoryUnavailable,
    WeakPassword,
)
from appliance.core.sessions import SessionDirectory
from appliance.services.admins import Administrators
from appliance.services.errors import Conflict, NotFound, Refused, ServiceError, audit
from appliance.util.i18n import _, lazy
from appliance.xmpp.jid import JID, JIDError

WEAK_PASSWORD = lazy("This password cannot be used: it needs at least 8 characters and no control characters.")


@dataclass(frozen=True, slots=True)
class SessionInfo:
    jid: str
    available: bool
    priority: int
    transport: str
    address: str
    client: str = ""  # the client software, e.g. "Conversations on Pixel 7" or "Gajim"; "" unknown


# Caps nodes (XEP-0115) of common clients -> their names; others show the node's host name.
KNOWN_CLIENTS = {
    "conversations.im": "Conversations", "gajim.org": "Gajim", "dino.im": "Dino", "monal-im.org": "Monal",
    "monal.im": "Monal", "psi-im.org": "Psi", "profanity-im.github.io": "Profanity", "slixmpp.com": "slixmpp",
    "poez.io": "Poezio", "movim.eu": "Movim", "conversejs.org": "Converse.js", "siskin.im": "Siskin IM",
    "beagle.im": "BeagleIM", "cheogram.com": "Cheogram", "blabber.im": "blabber.im", "pidgin.im": "Pidgin",
}


def client_name(raw: str) -> str:
    """What to show for a session's client: SASL2's own words, or a caps node's client name or host."""
    if "://" not in raw:
        return raw
    host = raw.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0].lower().removeprefix("www.")
    return KNOWN_CLIENTS.get(host, host)


class AccountAdmin:
    """Administrative account operations on the hosts of one installation; every change is audited."""

    def __init__(self, accounts: AccountService, sessions: SessionDirectory, hosts: Sequence[str], *,
                 admins: Administrators | None) -> None:
        self.accounts = accounts
        self.sessions_directory = sessions  # empty when the server is not running (the CLI)
        self.hosts = tuple(hosts)
        self.admins = admins  # None off-line (the CLI): server.admins is then left as it is

    def default_host(self) -> str:
        return self.hosts[0]

    def jid_on_host(self, text: str) -> JID:
        """The bare account JID written as "alice@host"; ServiceError if it is none of ours."""
        try:
            jid = JID.parse(text.strip())
        except JIDError:
            raise ServiceError(self._not_an_account(text)) from None
        if jid.local is None or jid.resource is not None:
            raise ServiceError(self._not_an_account(text))
        if jid.domain not in self.hosts:
            raise ServiceError(_("%(host)s is not a domain of this server.", host=jid.domain))
        return jid

    def _not_an_account(self, text: str) -> str:
        return _("%(text)s is not an account address like alice@%(host)s.", text=text, host=self.default_host())

    def account_jid(self, text: str) -> JID:
        """A bare account JID from "alice" (on the first host) or "alice@host"."""
        text = text.strip()
        return self.jid_on_host(text if "@" in text else f"{text}@{self.default_host()}")

    async def verify(self, account: str, password: str) -> JID | None:
        """The bare JID written in `account` if `password` is its password, else None."""
        try:
            jid = JID.parse(account)
        except JIDError:
            return None
        if jid.local is None or jid.resource is not None:
            return None
        try:
            if not await self.accounts.verify_plain(jid.bare(), password):
                return None
        except DirectoryUnavailable as exc:
            raise ServiceError(_("The company directory cannot check passwords now; try again later or log in "
                                 "with a local account.")) from exc
        return None if await self.accounts.is_disabled(jid.bare()) else jid.bare()

    async def count(self, host: str | None = None) -> int:
        """Accounts on `host`, or on every host."""
        return sum([await self.accounts.count(name) for name in ([host] if host else self.hosts)])

    async def page(self, host: str, *, limit: int, offset: int) -> list[str]:
        """The user names of `host`, `limit` from `offset` on (in a stable order)."""
        return await self.accounts.list(host, limit=limit, offset=offset)

    async def users(self, query: str = "", host: str | None = None, limit: int = 200) -> list[str]:
        out: list[str] = []
        for name in [host] if host else list(self.hosts):
            out += [f"{u}@{name}" for u in await self.accounts.list(name, prefix=query.strip(), limit=limit)]
        return out[:limit]

    async def create(self, actor: str, account: str, password: str) -> str:
        jid = self.account_jid(account)
        try:
            with _password_rules():
                await self.accounts.create(jid, password)
        except AccountExists:
            raise Conflict(_("%(jid)s already exists.", jid=jid)) from None
        audit.info("admin %s: created account %s", actor, jid)
        return str(jid)

    async def reset_password(self, actor: str, account: str, password: str) -> None:
        jid = self.account_jid(account)
        try:
            with _password_rules():
                await self.accounts.set_password(jid, password)
        except AccountNotFound:
            raise NotFound(_("%(jid)s does not exist.", jid=jid)) from None
        audit.info("admin %s: reset the password of %s", actor, jid)

    async def delete(self, actor: str, account: str) -> None:
        jid = self.account_jid(account)
        if str(jid) == actor:
            raise ServiceError(_("You cannot delete your own account while logged in with it."))
        self._close_sessions(jid)
        try:
            await self.accounts.delete(jid)
        except AccountNotFound:
            raise NotFound(_("%(jid)s does not exist.", jid=jid)) from None
        audit.info("admin %s: deleted account %s", actor, jid)
        if self.admins is not None:
            await self.admins.account_deleted(actor, str(jid))

    async def set_disabled(self, actor: str, account: str, disabled: bool) -> None:
        """Disable an account (its sessions end, it cannot log in; its data stays) or enable it again."""
        jid = self.account_jid(account)
        if disabled and str(jid) == actor:
            raise ServiceError(_("You cannot disable your own account while logged in with it."))
        try:
            await self.accounts.set_disabled(jid, disabled)
        except AccountNotFound:
            raise NotFound(_("%(jid)s does not exist.", jid=jid)) from None
        if disabled:
            self._close_sessions(jid)
        audit.info("admin %s: %s account %s", actor, "disabled" if disabled else "re-enabled", jid)

    def _close_sessions(self, jid: JID) -> int:
        sessions = self.sessions_directory.resources(jid)
        for session in sessions:
            session.close("policy-violation", "Disconnected by an administrator")
        return len(sessions)

    async def disconnect(self, actor: str, account: str) -> int:
        jid = self.account_jid(account)
        count = self._close_sessions(jid)
        audit.info("admin %s: disconnected %s (%d sessions)", actor, jid, count)
        return count

    def sessions(self) -> list[SessionInfo]:
        out = []
        for session in self.sessions_directory.all():
            transport = getattr(session, "transport", None)
            kind = type(transport).__name__.removesuffix("Transport").lower() if transport else ""
            peer = getattr(transport, "peer", None) or ""
            address = peer[0] if isinstance(peer, tuple) and peer else str(peer)
            out.append(SessionInfo(str(session.jid), session.available, session.priority,
                                   kind.replace("xmpptcpprotocol", "tcp"), address,
                                   client_name(getattr(session, "client", ""))))
        return sorted(out, key=lambda s: s.jid)


__all__ = ["WEAK_PASSWORD", "AccountAdmin", "SessionInfo"]


@contextlib.contextmanager
def _password_rules() -> Iterator[None]:
    """A password the account rules refuse becomes the administrator's `Refused` message."""
    try:
        yield
    except WeakPassword as exc:
        raise Refused(_(WEAK_PASSWORD), str(exc)) from None
