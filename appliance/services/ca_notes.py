"""How to trust the local CA on each platform: one text for `parlour cert ca` and the console's
certificates page (translated there; the CLI prints English)."""

from __future__ import annotations

import hashlib

from appliance.util.i18n import _, lazy

CA_INSTALL_NOTES: tuple[tuple[str, str], ...] = (
    ("Windows", lazy('Double-click the .crt file > Install Certificate > Local Machine > "Trusted Root '
                     'Certification Authorities".')),
    ("macOS", lazy('Open it in Keychain Access (System keychain), double-click it, Trust > "Always Trust".')),
    ("Android", lazy("Settings > Security > Encryption & credentials > Install a certificate > CA certificate.")),
    ("iOS", lazy("Open the file (AirDrop, mail), install the profile in Settings > General > VPN & Device "
                 "Management, then enable it in Settings > General > About > Certificate Trust Settings.")),
    ("Linux", lazy("sudo cp ca.crt /usr/local/share/ca-certificates/parlour.crt && sudo update-ca-certificates "
                   "(Fedora: /etc/pki/ca-trust/source/anchors/ and update-ca-trust).")),
)
CA_INTRO = lazy("Install it once on each device that should trust this server's local certificates:")
CA_CHECK = lazy("Compare the SHA-256 fingerprint above with the one shown on the device before trusting it.")


def ca_fingerprint(pem: bytes) -> tuple[str, str]:
    """(subject, SHA-256 fingerprint as AA:BB:...) of a PEM certificate; raises ValueError if it is none."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(pem)
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest().upper()
    return cert.subject.rfc4514_string(), ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def ca_notes_text() -> str:
    """The notes as plain text in the current language (English outside a web request)."""
    lines = [_(CA_INTRO)]
    lines += [f"  {platform + ':':<9}{_(text)}" for platform, text in CA_INSTALL_NOTES]
    lines.append(_(CA_CHECK))
    return "\n".join(lines)


__all__ = ["CA_CHECK", "CA_INSTALL_NOTES", "CA_INTRO", "ca_fingerprint", "ca_notes_text"]
