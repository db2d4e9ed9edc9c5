"""Federation policy: may this server send to, or accept from, a remote domain? ([federation] settings)

The router asks before any stanza leaves for a remote domain (`Router._route_remote`): a refused one
is dropped and its sender gets an error saying why, unless `silent_drop` is set. The s2s driver asks
when a remote server opens a stream (`stream_refusal`: a stream error to send before closing) and for
each stanza on streams opened before a change (`accepts`). The settings are read live on every
question, so a reload (config file, `parlour federation`, the console) applies to the next stanza.

A rule for a domain covers its subdomains too: blocking example.org blocks conference.example.org.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from appliance.config.model import FederationConfig
from appliance.xmpp.errors import StanzaError, StreamError


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a remote domain is refused, as the sender and the remote server are told."""

    text: str

    def stanza_error(self) -> StanzaError:
        """not-allowed: RFC 6120 §8.3.3.9 names "sending to entities at a blacklisted domain" as its
        example (and clients older than RFC 6120 do not know policy-violation); the text says why."""
        return StanzaError.not_allowed(self.text)

    def stream_error(self) -> StreamError:
        """RFC 6120 §4.9.3.15: the peer's domain violates our local policy."""
        return StreamError.policy_violation(self.text)


def covers(domains: Iterable[str], domain: str) -> bool:
    """Whether `domain` is one of `domains` or a subdomain of one."""
    return any(domain == rule or domain.endswith("." + rule) for rule in domains)


class FederationPolicy:
    """Answers "may we talk to domain D" from the running [federation] settings."""

    __slots__ = ("_config",)

    def __init__(self, config: Callable[[], FederationConfig]) -> None:
        self._config = config  # the running settings: a reload replaces what this returns

    @property
    def silent(self) -> bool:
        return self._config().silent_drop

    def refusal(self, domain: str) -> Refusal | None:
        """None when `domain` may be talked to; else why not."""
        cfg = self._config()
        if not cfg.enabled:
            return Refusal("This server does not talk to users of other XMPP servers")
        if covers(cfg.blocked_domains, domain):
            return Refusal(f"{domain} is blocked on this server")
        if cfg.mode == "allowlist" and not covers(cfg.allowed_domains, domain):
            return Refusal(f"This server talks only to chosen servers, and {domain} is not one")
        return None

    def accepts(self, domain: str) -> bool:
        """May stanzas from `domain` be taken (and we send to it)? The same rules both ways."""
        return self.refusal(domain) is None

    def stream_refusal(self, domain: str) -> StreamError | None:
        """For the s2s driver at stream open (the peer's 'from', or each dialback/piggybacked domain):
        None to go on, else the stream error to send before closing (nothing of theirs is stored)."""
        refusal = self.refusal(domain)
        return refusal.stream_error() if refusal is not None else None


__all__ = ["FederationPolicy", "Refusal", "covers"]
