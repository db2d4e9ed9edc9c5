"""What the console and the API know and do about certificates: every served certificate, the ACME
status, "renew now", the local CA, and the alerts shown on every console page.

All of it comes from the server's `CertificateCare` (certs/care.py) and certificate store; renewing goes
through `CertificateCare.renew_now`, the code path of `parlour cert renew`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from appliance.certs.acme.state import AcmeStatus
from appliance.certs.care import CertificateCare, CertificateView
from appliance.certs.ocsp import OcspFetcher
from appliance.certs.store import CertificateStore
from appliance.config.model import Config
from appliance.services.errors import ServiceError, audit
from appliance.util.i18n import _, lazy

log = logging.getLogger(__name__)

KINDS = {"acme": lazy("ACME (Let's Encrypt)"), "imported": lazy("imported"), "local-ca": lazy("local CA"),
         "self-signed": lazy("self-signed")}
ACME_OFF = lazy("Automatic certificates (ACME) are not enabled on this server, so there is nothing to renew. "
                "To use Let's Encrypt, set enabled = true, email and agree_tos = true in the [acme] section of "
                "parlour.toml and restart the server.")


@dataclass(frozen=True, slots=True)
class OcspReport:
    """One served certificate's OCSP status, as the console shows it."""

    names: tuple[str, ...]
    status: str  # good, revoked, unknown, failing, pending, no-url
    until: dt.datetime | None  # when the held response runs out
    error: str  # the last failure to get one


class CertificateDesk:
    """Certificates of one running server, for the console and the API."""

    def __init__(self, care: CertificateCare | None, store: CertificateStore | None,
                 config: Callable[[], Config], ocsp: OcspFetcher | None = None) -> None:
        self.care = care
        self.store = store
        self.config = config
        self.ocsp = ocsp

    def ocsp_requests(self) -> tuple[int, int]:
        """Requests made to OCSP responders since start, and how many failed."""
        return (self.ocsp.fetches, self.ocsp.fetch_failures) if self.ocsp is not None else (0, 0)

    def ocsp_report(self) -> list[OcspReport]:
        """The OCSP status of every served certificate that names a responder (stapling on)."""
        if self.ocsp is None or self.store is None or not self.config().tls.ocsp_stapling:
            return []
        out = []
        for info in self.store.info():
            state = self.ocsp.state_of(info)
            if state is not None and state.status != "no-url":
                out.append(OcspReport(info.names, state.status, state.next_update, state.error))
        return out

    @property
    def acme_enabled(self) -> bool:
        return self.config().acme.enabled

    def certificates(self, now: dt.datetime | None = None) -> list[CertificateView]:
        return self.care.certificates(now) if self.care is not None else []

    def acme_status(self) -> AcmeStatus | None:
        return self.care.acme_status() if self.care is not None else None

    def alerts(self) -> list[str]:
        """One sentence per certificate with less than 14 days left, and one if the last renewal failed."""
        out = [_("The certificate for %(names)s expires on %(date)s (%(days)s days left).",
                 names=", ".join(v.info.names), date=f"{v.info.not_after:%Y-%m-%d}", days=max(0, v.days_left))
               for v in self.certificates() if v.expiring]
        out += [_("The certificate for %(names)s is REVOKED by its certificate authority: clients that check "
                  "refuse it. Replace it now.", names=", ".join(r.names)) for r in self.ocsp_report()
                if r.status == "revoked"]
        status = self.acme_status()
        if status is not None and not status.ok:
            out.append(_("The last certificate renewal failed (%(when)s UTC).", when=f"{status.when:%Y-%m-%d %H:%M}"))
        return out

    async def renew(self, actor: str) -> AcmeStatus:
        """Order a certificate now; ServiceError in plain words when ACME is off or the attempt broke."""
        if self.care is None or not self.acme_enabled:
            raise ServiceError(_(ACME_OFF))
        audit.info("admin %s: asked for certificate renewal now", actor)
        try:
            status = await self.care.renew_now()
        except Exception:
            log.exception("Certificate renewal asked for in the console failed")
            raise ServiceError(
                _("The renewal stopped because of an internal error; the log has the details.")) from None
        if status is None:
            raise ServiceError(_(ACME_OFF))
        audit.info("admin %s: certificate renewal %s", actor, "succeeded" if status.ok else "failed")
        return status

    def ca_pem(self) -> bytes | None:
        """The local CA certificate (PEM), or None before the server made one."""
        certs = self.store
        if certs is None:
            return None
        try:
            return (certs.certs_dir / "ca.pem").read_bytes()
        except OSError:
            return None


__all__ = ["ACME_OFF", "KINDS", "CertificateDesk"]
