"""Who administers the server: the accounts in server.admins, and what happens when one is deleted."""

from __future__ import annotations

from collections.abc import Callable

from appliance.config.model import Config
from appliance.services.errors import ServiceError, audit
from appliance.services.settings import Settings
from appliance.storage.tokens import TokenFile


class Administrators:
    """server.admins of the running configuration (`config`), kept in step with account deletions."""

    def __init__(self, config: Callable[[], Config], tokens: TokenFile, settings: Settings) -> None:
        self.config = config
        self.tokens = tokens
        self.settings = settings

    def is_admin(self, jid: str) -> bool:
        return jid in self.config().server.admins

    async def account_deleted(self, actor: str, jid: str) -> None:
        """Rights are granted by name, so a deleted administrator's name leaves server.admins and its API
        tokens are revoked: an account made later under that name starts without rights."""
        if not self.is_admin(jid):
            return
        for token in self.tokens.api_tokens():
            if token.owner == jid:
                await self.tokens.revoke_api_token(token.id)
        admins = [a for a in self.config().server.admins if a != jid]
        try:
            await self.settings.apply(actor, {"server.admins": admins})
        except ServiceError as exc:
            # Still safe: self-service sign-up refuses names in server.admins (register, invitations).
            audit.warning("admin %s: %s stays in server.admins (%s); remove it by hand", actor, jid, exc)
            return
        audit.info("admin %s: removed %s from server.admins with its account", actor, jid)


__all__ = ["Administrators"]
