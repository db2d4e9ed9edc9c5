"""Federation policy for administrators: list the [federation] settings, block and unblock remote domains.

The console, the API and `parlour federation` call this; every change goes through `Settings.apply`
(validated, written to parlour.toml, reloaded), so the file stays the one source of truth and a running
server applies it to the next stanza.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config import spec
from appliance.config.model import FederationConfig
from appliance.services.errors import ServiceError
from appliance.services.settings import Settings
from appliance.util.i18n import _

BLOCKED = "federation.blocked_domains"
ENABLED = "federation.enabled"


@dataclass(frozen=True, slots=True)
class FederationView:
    """The federation settings as the console and `parlour federation list` show them."""

    enabled: bool
    mode: str
    blocked: tuple[str, ...]
    allowed: tuple[str, ...]
    silent_drop: bool


def domain_of(text: str) -> str:
    """A remote domain as typed by an administrator, in the prepared form the rules compare."""
    try:
        return spec.check_domain(text)
    except ValueError:
        raise ServiceError(_("%(domain)s is not a domain name like example.org", domain=text)) from None


class FederationDesk:
    """Reads and changes which remote domains this server talks to."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _current(self) -> FederationConfig:
        return self.settings.config().federation

    def view(self) -> FederationView:
        cfg = self._current()
        return FederationView(cfg.enabled, cfg.mode, cfg.blocked_domains, cfg.allowed_domains, cfg.silent_drop)

    async def switch(self, actor: str, enabled: bool) -> None:
        """Turn federation on or off; a running server opens or closes its s2s listeners on the reload."""
        await self.settings.apply(actor, {ENABLED: enabled})

    async def block(self, actor: str, text: str) -> str:
        """Block a remote domain (and its subdomains); returns the domain as stored."""
        domain = domain_of(text)
        blocked = self._current().blocked_domains
        if domain in blocked:
            raise ServiceError(_("%(domain)s is blocked already", domain=domain))
        if any(host.name == domain for host in self.settings.config().hosts):
            raise ServiceError(_("%(domain)s is a host of this server", domain=domain))
        await self.settings.apply(actor, {BLOCKED: [*blocked, domain]})
        return domain

    async def unblock(self, actor: str, text: str) -> str:
        domain = domain_of(text)
        blocked = self._current().blocked_domains
        if domain not in blocked:
            raise ServiceError(_("%(domain)s is not blocked", domain=domain))
        await self.settings.apply(actor, {BLOCKED: [d for d in blocked if d != domain]})
        return domain


__all__ = ["FederationDesk", "FederationView", "domain_of"]
