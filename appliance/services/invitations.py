"""Invitation links: an administrator makes one, someone opens it and picks a name and a password."""

from __future__ import annotations

import time
from collections.abc import Callable

from yarl import URL

from appliance.config.model import Config
from appliance.core.accounts import AccountExists, AccountService, WeakPassword
from appliance.services.accounts import WEAK_PASSWORD, AccountAdmin
from appliance.services.admins import Administrators
from appliance.services.errors import Conflict, NotFound, ServiceError, audit
from appliance.storage.tokens import Invitation, TokenFile
from appliance.util.i18n import _


class Invitations:
    """Invitation links of one installation; `config` returns the running configuration (it reloads)."""

    def __init__(self, tokens: TokenFile, accounts: AccountService, account_admin: AccountAdmin,
                 admins: Administrators, config: Callable[[], Config]) -> None:
        self.tokens = tokens
        self.accounts = accounts
        self.account_admin = account_admin
        self.admins = admins
        self.config = config

    @property
    def enabled(self) -> bool:
        return self.config().console.invitations

    async def create(self, actor: str, host: str | None = None) -> tuple[str, Invitation]:
        console = self.config().console
        if not console.invitations:
            raise ServiceError(_("Invitations are turned off (console.invitations = false)."))
        host = host or self.account_admin.default_host()
        if host not in self.account_admin.hosts:
            raise ServiceError(_("%(host)s is not a domain of this server.", host=host))
        secret, record = await self.tokens.new_invitation(host, actor, console.invitation_lifetime)
        audit.info("admin %s: created invitation %s for %s", actor, record.id, host)
        return secret, record

    def link(self, record: Invitation, secret: str) -> str:
        """The invitation's URL: its configured domain on the HTTPS port (plain HTTP when http.https is
        off). Never the Host header of the request that made it, which the client chooses."""
        http = self.config().http
        scheme, port = ("https", http.tls_port) if http.https else ("http", http.port)
        return str(URL.build(scheme=scheme, host=record.host, port=port, path=f"/invite/{secret}"))

    def list(self) -> list[Invitation]:
        return self.tokens.invitations()

    async def revoke(self, actor: str, invitation_id: str) -> None:
        if not await self.tokens.revoke_invitation(invitation_id):
            raise NotFound(_("There is no invitation %(id)s.", id=invitation_id))
        audit.info("admin %s: revoked invitation %s", actor, invitation_id)

    def open(self, secret: str) -> Invitation | None:
        """The still valid invitation behind a link, else None."""
        record = self.tokens.find_invitation(secret)
        if record is None or not record.valid(time.time()) or not self.enabled:
            return None
        return record

    async def accept(self, secret: str, username: str, password: str) -> str:
        """Create the account the invitation behind `secret` allows; returns its JID."""
        record = self.open(secret)
        if record is None:
            raise ServiceError(_("This invitation is not valid (any more)."))
        jid = self.account_admin.jid_on_host(f"{username.strip()}@{record.host}")
        if self.admins.is_admin(str(jid)):  # reserved: see Administrators.account_deleted
            raise Conflict(_("%(jid)s is taken; choose another name.", jid=jid))
        # Claimed before the (slow) account creation: concurrent redemptions of one link make one account.
        if await self.tokens.claim_invitation(secret, str(jid), time.time()) is None:
            raise ServiceError(_("This invitation is not valid (any more)."))
        created = False
        try:
            await self.accounts.create(jid, password)
            created = True
        except AccountExists:
            raise Conflict(_("%(jid)s is taken; choose another name.", jid=jid)) from None
        except WeakPassword:
            raise ServiceError(_(WEAK_PASSWORD)) from None
        finally:
            if not created:
                await self.tokens.release_invitation(record)
        audit.info("invitation %s (by %s) used to create %s", record.id, record.creator, jid)
        return str(jid)


__all__ = ["Invitations"]
