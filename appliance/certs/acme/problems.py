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
    def authority_error(cls, detail: str, kind: str = "", name: str | None = None) -> CertProblem:
        """The authority refused a request (for ``name``); ``kind`` is its ACME problem type (RFC 8555 §6.7)."""
        short = kind.rpartition(":")[2]
        return cls(f"The certificate authority refused the request: {detail}",
                   _AUTHORITY_HINTS.get(short, "Parlour tries again later; the authority's message above says "
                                               "what it needs."), name)

    @classmethod
    def unreachable_authority(cls, directory: str, reason: str) -> CertProblem:
        return cls(
            f"The certificate authority at {directory} cannot be reached: {reason}.",
            "Check this server's internet connection, its clock, and acme.directory (and acme.ca_bundle for "
            "a private ACME server).",
        )


# What to do about each ACME problem type (RFC 8555 §6.7 and the registry), in the person's terms.
_AUTHORITY_HINTS = {
    "rejectedIdentifier": "The authority will not issue a certificate for one of the hosted names (its policy "
                          "refuses it, e.g. a name under a non-public or blocked domain): use names under a "
                          "public domain you own, or import a certificate for them.",
    "caa": "A CAA record in DNS forbids this authority to issue for the domain: add a CAA record allowing it "
           "(for Let's Encrypt: 0 issue \"letsencrypt.org\") or remove the CAA records.",
    "invalidContact": "The authority refuses the contact address: set acme.email to a working address of yours "
                      "(not one at example.com or a domain without mail).",
    "unsupportedContact": "The authority refuses the contact address: set acme.email to a plain e-mail address.",
    "externalAccountRequired": "This authority needs an external account binding from its website, which "
                               "Parlour does not offer: use an authority without it, such as Let's Encrypt.",
    "userActionRequired": "The authority needs you to do something first (often: accept new terms of service) "
                          "on its website; then Parlour tries again.",
    "accountDoesNotExist": "The authority no longer knows Parlour's account; Parlour registers a new one by "
                           "itself at the next attempt.",
    "unauthorized": "The authority does not allow this account to get a certificate for these names: check "
                    "that every hosted name is yours and resolves to this server.",
    "serverInternal": "The authority has a problem of its own: nothing to do here, Parlour tries again later.",
    "badNonce": "A one-time token was refused (a network hiccup): Parlour tries again by itself.",
    "orderNotReady": "The order was not ready yet: Parlour tries again by itself.",
    "malformed": "The authority did not understand Parlour's request: update Parlour; if it persists, report "
                 "it with the message above.",
    "badCSR": "The authority refused the certificate request Parlour made: update Parlour; if it persists, "
              "report it with the message above.",
    "badPublicKey": "The authority refused the key type of the certificate request: update Parlour.",
    "badSignatureAlgorithm": "The authority refused the account key's signature: update Parlour.",
    "unsupportedIdentifier": "One of the hosted names is of a kind the authority does not certify (an IP "
                             "address or a local name): use DNS names under a public domain.",
}
