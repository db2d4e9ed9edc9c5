"""Federation for administrators: the [federation] settings (switch, block and unblock remote domains)
and the live server-to-server connections.

The console, the API and `parlour federation` call this; every change goes through `Settings.apply`
(validated, written to parlour.toml, reloaded), so the file stays the one source of truth and a running
server applies it to the next stanza. `links()` lists the connections like `ejabberdctl connected_s2s`
or Prosody's `s2s:show()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from appliance.config import spec
from appliance.config.model import FederationConfig
from appliance.core.s2s import Federation, ServerConnection
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


@dataclass(frozen=True, slots=True)
class Link:
    """One connection to another server (or a domain still waiting for one), as status pages show it."""

    domain: str
    direction: str  # "out" (we opened it) or "in"
    state: str  # "connected", or "connecting" (stanzas wait and no connection is up yet)
    tls: str | None  # TLS version, None without TLS
    direct_tls: bool  # XEP-0368: TLS from the first byte
    auth: str  # "external" (certificate), "dialback", or "none" yet
    bidi: bool  # XEP-0288: stanzas both ways
    stream_management: bool  # XEP-0198 on this stream
    queued: int  # stanzas waiting for this domain (outgoing)
    since: float  # Unix time the connection was made
    stanzas_in: int
    stanzas_out: int
    address: str  # the peer's IP address

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Link:
        return cls(**{name: data[name] for name in cls.__slots__})  # type: ignore[attr-defined]


def _link(federation: Federation, connection: ServerConnection) -> Link:
    machine = connection.machine
    domain = machine.remote or next((remote for remote, _ in machine.pairs), "?")
    state = federation.remotes.get(domain)
    queued = len(state.queue) if state is not None and connection.outgoing else 0
    return Link(domain, "out" if connection.outgoing else "in", "connected", connection.tls_version,
                connection.direct_tls, connection.secure_method, machine.bidi,
                machine.sm_requested if connection.outgoing else machine.sm_handled is not None,
                queued, connection.since, connection.stanzas_in, connection.stanzas_out, connection.peer_ip)


def live_links(federation: Federation | None) -> list[Link]:
    """Every s2s connection of a running federation, by domain, plus the domains still being connected."""
    if federation is None:
        return []
    links = [_link(federation, c) for c in federation.connections()]
    for domain, state in federation.remotes.items():
        if state.queue and (state.connection is None or state.connection.closed):
            links.append(Link(domain, "out", "connecting", None, False, "none", False, False, len(state.queue),
                              time.time(), 0, 0, ""))
    return sorted(links, key=lambda link: (link.domain, link.direction))


def domain_of(text: str) -> str:
    """A remote domain as typed by an administrator, in the prepared form the rules compare."""
    try:
        return spec.check_domain(text)
    except ValueError:
        raise ServiceError(_("%(domain)s is not a domain name like example.org", domain=text)) from None


class FederationDesk:
    """Reads and changes which remote domains this server talks to."""

    def __init__(self, settings: Settings, live: Callable[[], Federation | None] = lambda: None,
                 stats: Mapping[str, int] | None = None) -> None:
        self.settings = settings
        self.live = live  # the running federation, None while it is off (or outside a running server)
        self.stats = stats if stats is not None else {}  # the core's counters (s2s_* among them)

    def links(self) -> list[Link]:
        """The live server-to-server connections (empty while federation is off)."""
        return live_links(self.live())

    def counters(self) -> dict[str, int]:
        """Totals since the server started: s2s connections, stanzas, bounces, dialback failures."""
        return {key.removeprefix("s2s_"): value for key, value in self.stats.items() if key.startswith("s2s_")}

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


__all__ = ["FederationDesk", "FederationView", "Link", "domain_of", "live_links"]
