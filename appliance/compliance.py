"""The compliance table: every XEP the built-in modules declare, as Markdown and as a DOAP file.

    python -m appliance.compliance markdown > docs/compliance.md
    python -m appliance.compliance doap > docs/parlour.doap
"""

from __future__ import annotations

import sys
from xml.sax.saxutils import escape

from appliance import __version__
from appliance.catalog import BUILTIN
from appliance.core.api import Module, Xep

# (RFC, status, where, what it covers and what is missing)
RFCS = (
    ("RFC 6120", "complete", "core/c2s/, core/s2s/, xmpp/",
     "XMPP core: client streams; server-to-server (with [federation] enabled, off by default): STARTTLS and "
     "direct TLS (XEP-0368) both ways, SRV lookup with fallback to 5269 (§3.2), Server Dialback both ways, "
     "SASL EXTERNAL both ways (incoming: the peer's certificate is asked for without refusing any, then "
     "checked per RFC 6125, falling back to dialback), SASL failures and abort (§6.4.4, §6.5), stream "
     "errors after a response header with xml:lang (§4.7.4, §4.9.1.2), stanza addressing per authenticated "
     "domain pair: not-authorized before authentication, improper-addressing, invalid-from, host-unknown "
     "(§4.9.3.12, §8.1.1.2, §8.1.2.2), bounces with remote-server-not-found / -timeout (§8.3.3), server "
     "identities per §13.7.1.2 (DNS-ID, SRV-ID, XmppAddr; RFC 6125), connection limits (§13.12), the closing "
     "handshake (§4.4); every server-to-server MUST audited one by one, each with its test, in "
     "[compliance-rfc6120-s2s.md](compliance-rfc6120-s2s.md); the TLS suite TLS_RSA_WITH_AES_128_CBC_SHA "
     "(§13.8) is left out under RFC 7590"),
    ("RFC 6121", "complete", "modules/roster.py, presence.py, message.py", "Instant messaging and presence"),
    ("RFC 6125", "complete", "net/identity.py, net/s2s.py, net/s2s_tls.py",
     "server identity of remote servers (RFC 6120 §13.7.1.2) checked against the source domain (never the SRV "
     "target), for servers we connect to and for SASL EXTERNAL of servers connecting to us: DNS-ID, SRV-ID "
     "(_xmpp-server, _xmpps-server) and XmppAddr, wildcards only as the whole left-most label (never in an "
     "XmppAddr), IDNA names compared as A-labels, the common name only without a subjectAltName; "
     "serverAuth-only certificates accepted"),
    ("RFC 7395", "complete", "web/websocket.py", "XMPP over WebSocket"),
    ("RFC 7590", "complete", "net/tls.py, net/s2s.py",
     "TLS 1.2 and 1.3 only, Mozilla intermediate cipher suites (ECDHE, AEAD), no compression or "
     "renegotiation; certificates of remote servers verified against the system's or s2s.ca_bundle's CAs"),
    ("RFC 6066 §8", "complete", "certs/stapling.py, net/openssl_tls.py",
     "Certificate Status Request (OCSP stapling) on c2s (STARTTLS and direct TLS) and HTTPS, with [tls] "
     "ocsp_stapling (on by default) and a response held for the certificate; not on s2s nor TURN"),
    ("RFC 6960", "partial", "certs/ocsp.py",
     "OCSP client for stapling: request for the served certificate, response checked (issuer or delegated "
     "id-kp-OCSPSigning responder, serial, thisUpdate/nextUpdate), kept on disk, refreshed at half its "
     "validity; no nonce, no GET requests"),
    ("RFC 7622", "complete", "xmpp/jid.py", "Address format (PRECIS)"),
    ("RFC 4513", "partial", "directory/ldap.py",
     "LDAP client for directory logins ([ldap]): simple bind after a search, StartTLS or LDAPS with certificate "
     "checks; no SASL binds to the directory (docs/directory.md)"),
)

# XEPs implemented by transports and the core rather than by a feature module.
CORE_XEPS: tuple[tuple[Xep, str], ...] = (
    (Xep(114, "1.6", note="external components: handshake, own domain, disco#items"), "core/component.py"),
    (Xep(124, "1.11.2", note="BOSH transport"), "web/bosh.py"),
    (Xep(156, "1.4.0", note="host-meta XML and JSON"), "web/wellknown.py"),
    (Xep(198, "1.6.1", note="on server-to-server streams: acks, resumption after a broken connection, "
                            "resending what the peer had not handled"), "core/s2s/"),
    (Xep(206, "1.4", note="XMPP over BOSH"), "web/bosh.py"),
    (Xep(227, "1.1", "partial", note="parlour export/import --xep0227: accounts with SCRAM credentials, roster, "
         "subscription requests, vCard, private XML, offline messages, PEP nodes and archives (Prosody's and "
         "ejabberd's extensions); not privacy lists (XEP-0016)"), "services/portable.py"),
    (Xep(185, "1.0", note="dialback keys: HMAC-SHA256 of a per-process secret"), "xmpp/dialback.py"),
    (Xep(220, "1.1.1", note="dialback both ways with piggybacking; dialback errors (§2.4) sent and handled "
                             "(item-not-found, remote-connection-failed, remote-server-not-found, "
                             "remote-server-timeout, policy-violation, not-authorized, forbidden, "
                             "internal-server-error), an invalid key ending the stream, what waited bounced "
                             "at once (§2.1.3); not the XEP-0344 shortcut"), "core/s2s/"),
    (Xep(288, "1.0.1", note="bidirectional server-to-server streams, offered and requested; idle close counts "
                             "traffic both ways and waits for the peer's </stream:stream> (nothing in flight "
                             "lost)"), "core/s2s/"),
    (Xep(368, "1.1.0", note="direct TLS listeners for clients (5223) and servers (5270); outgoing s2s to "
                            "_xmpps-server targets first"), "app/listeners.py, app/federation.py"),
)


def declared(modules: tuple[type[Module], ...] = BUILTIN) -> list[tuple[Xep, str]]:
    """(Xep, module name) for every declaration, sorted by XEP number."""
    rows = [(xep, module.name) for module in modules for xep in module.implements] + list(CORE_XEPS)
    return sorted(rows, key=lambda row: (row[0].number, row[1]))


def markdown(modules: tuple[type[Module], ...] = BUILTIN) -> str:
    lines = [
        "# Parlour compliance",
        "",
        f"Generated from the modules' metadata (`python -m appliance.compliance markdown`), Parlour {__version__}.",
        "",
        "| specification | version | status | module | note |",
        "|---|---|---|---|---|",
    ]
    for name, status, where, what in RFCS:
        lines.append(f"| {name} | - | {status} | {where} | {what} |")
    for xep, module in declared(modules):
        lines.append(f"| XEP-{xep.number:04d} | {xep.version} | {xep.status} | {module} | {xep.note} |")
    return "\n".join(lines) + "\n"


def doap(modules: tuple[type[Module], ...] = BUILTIN) -> str:
    implements = "".join(
        "    <implements>\n      <xmpp:SupportedXep>\n"
        f"        <xmpp:xep rdf:resource='https://xmpp.org/extensions/xep-{xep.number:04d}.html'/>\n"
        f"        <xmpp:version>{escape(xep.version)}</xmpp:version>\n"
        f"        <xmpp:status>{escape(xep.status)}</xmpp:status>\n"
        + (f"        <xmpp:note>{escape(xep.note)}</xmpp:note>\n" if xep.note else "")
        + "      </xmpp:SupportedXep>\n    </implements>\n"
        for xep, _module in declared(modules)
    )
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'\n"
        "         xmlns='http://usefulinc.com/ns/doap#' xmlns:xmpp='https://linkmauve.fr/ns/xmpp-doap#'>\n"
        "  <Project>\n    <name>Parlour</name>\n"
        "    <shortdesc>Self-contained XMPP server appliance</shortdesc>\n"
        "    <programming-language>Python</programming-language>\n"
        f"    <release><Version><revision>{__version__}</revision></Version></release>\n"
        f"{implements}  </Project>\n</rdf:RDF>\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    kind = args[0] if args else "markdown"
    if kind not in ("markdown", "doap"):
        print("usage: python -m appliance.compliance markdown|doap", file=sys.stderr)
        return 2
    sys.stdout.write(markdown() if kind == "markdown" else doap())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
