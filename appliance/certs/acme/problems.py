"""Certificate problems in plain words: what went wrong and how to fix it, never a stack trace.

The same records reach the log, the CLI and the console, so every message is written for the person
running the server. Their texts are part of the documented behaviour (tests assert them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

__all__ = ["CertProblem"]


@dataclass(frozen=True, slots=True)
class CertProblem:
    """One thing that stops (``error``) or may stop (``warning``) a certificate for ``name``."""

    message: str
    hint: str
    name: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.message} Fix: {self.hint}"

    def to_json(self) -> dict[str, str | None]:
        return {"message": self.message, "hint": self.hint, "name": self.name, "severity": self.severity}

    @classmethod
    def from_json(cls, data: dict[str, str | None]) -> CertProblem:
        severity = "warning" if data.get("severity") == "warning" else "error"
        return cls(str(data.get("message", "")), str(data.get("hint", "")), data.get("name"), severity)

    # -- the documented messages ------------------------------------------------------------------

    @classmethod
    def does_not_resolve(cls, name: str) -> CertProblem:
        return cls(
            f"{name} does not resolve: DNS has no address (A or AAAA record) for it.",
            f"Create an A record (and an AAAA record for IPv6) for {name} at your DNS provider, pointing at "
            "this server's public IP address; new records can take a while to appear.",
            name,
        )

    @classmethod
    def not_this_machine(cls, name: str, addresses: list[str]) -> CertProblem:
        return cls(
            f"{name} resolves to {', '.join(addresses)}, which is not an address of this machine.",
            "If this server is behind a router (NAT), forward ports 80 and 443 from that address to it; "
            f"otherwise correct the DNS record of {name}.",
            name,
            "warning",
        )

    @classmethod
    def port_unreachable(cls, name: str, port: int, reason: str, *, local: bool) -> CertProblem:
        return cls(
            f"Port {port} on {name} cannot be reached ({reason}).",
            f"The certificate authority checks {name} on port {port}: open port {port} in the firewall and "
            "forward it to this server"
            + ("." if local else "; if the router cannot loop back to its own address, this check may fail "
               "here and still succeed from the internet."),
            name,
            "error" if local else "warning",
        )

    @classmethod
    def wrong_responder(cls, name: str, port: int) -> CertProblem:
        return cls(
            f"Port {port} on {name} answers, but not with Parlour's check file: another program or web "
            "server is answering there.",
            f"Point port {port} at Parlour, or set acme.webroot to a folder your web server publishes at "
            "/.well-known/acme-challenge/.",
            name,
        )

    @classmethod
    def terms_not_agreed(cls, terms: str | None) -> CertProblem:
        where = f" at {terms}" if terms else ""
        return cls(
            "The certificate authority's terms of service have not been accepted.",
            f"Read them{where} and set acme.agree_tos = true in the configuration.",
        )

    @classmethod
    def no_tls_listener(cls, port: int) -> CertProblem:
        return cls(
            f"TLS-ALPN-01 is checked on port {port}, but no TLS listener of Parlour uses that port.",
            f"Set http.tls_port = {port} (or c2s.direct_tls_port = {port}), or use acme.challenge = \"http-01\".",
        )

    @classmethod
    def challenge_failed(cls, name: str, kind: str, detail: str, port: int) -> CertProblem:
        if "connection" in kind:
            hint = (f"The authority could not connect to {name} on port {port}: open and forward port {port} "
                    "to this server, and check the DNS records.")
        elif "dns" in kind:
            hint = f"The authority's DNS lookup of {name} failed: check its A and AAAA records."
        elif "unauthorized" in kind or "incorrectResponse" in kind:
            hint = (f"The authority reached {name} but got a wrong answer: port {port} leads to another "
                    "server, or an AAAA record points at a machine that is not this one.")
        else:
            hint = f"Check that {name} resolves to this server and port {port} reaches Parlour."
        return cls(f"The certificate authority could not verify {name}: {detail}", hint, name)

    @classmethod
    def kept_previous(cls, name: str, until: dt.datetime) -> CertProblem:
        return cls(
            f"{name} is missing from the new certificate; the previous certificate still covers it until "
            f"{until:%Y-%m-%d %H:%M} UTC.",
            f"Fix the problem with {name} above before then: Parlour keeps trying and adds it back.",
            name,
            "warning",
        )

    @classmethod
    def rate_limited(cls, detail: str, retry: str) -> CertProblem:
        return cls(
            f"The certificate authority refuses new certificates for now (rate limit): {detail}",
            f"Nothing to do: Parlour tries again {retry}. Use acme.directory = \"letsencrypt-staging\" for "
            "experiments.",
        )

    @classmethod
    def authority_error(cls, detail: str) -> CertProblem:
        return cls(
            f"The certificate authority refused the request: {detail}",
            "Check acme.email and the hosted names; Parlour tries again later.",
        )

    @classmethod
    def unreachable_authority(cls, directory: str, reason: str) -> CertProblem:
        return cls(
            f"The certificate authority at {directory} cannot be reached: {reason}.",
            "Check this server's internet connection, its clock, and acme.directory (and acme.ca_bundle for "
            "a private ACME server).",
        )
