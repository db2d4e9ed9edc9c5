"""API tokens: bearer secrets an administrator makes in the console for scripts using the JSON API."""

from __future__ import annotations

from collections.abc import Callable

from appliance.services.errors import NotFound, audit
from appliance.storage.tokens import ApiToken, TokenFile
from appliance.util.i18n import _


class ApiTokens:
    """The API tokens of one installation; a token works only while its owner is an administrator."""

    def __init__(self, tokens: TokenFile, is_admin: Callable[[str], bool]) -> None:
        self.tokens = tokens
        self.is_admin = is_admin

    async def create(self, actor: str, label: str) -> tuple[str, ApiToken]:
        secret, record = await self.tokens.new_api_token(actor, label.strip() or "API token")
        audit.info("admin %s: created API token %s (%s)", actor, record.id, record.label)
        return secret, record

    def list(self) -> list[ApiToken]:
        return self.tokens.api_tokens()

    async def revoke(self, actor: str, token_id: str) -> None:
        if not await self.tokens.revoke_api_token(token_id):
            raise NotFound(_("There is no API token %(id)s.", id=token_id))
        audit.info("admin %s: revoked API token %s", actor, token_id)

    def owner(self, secret: str) -> tuple[str | None, str]:
        """(administrator, "") for a usable token, else (None, why not)."""
        record = self.tokens.find_api_token(secret)
        if record is None:
            return None, "unknown or revoked API token"
        if not self.is_admin(record.owner):
            return None, f"the token's owner {record.owner} is no longer an administrator (server.admins)"
        return record.owner, ""


__all__ = ["ApiTokens"]
