"""What the console and the API know and do about certificates: every served certificate, the ACME
status, "renew now", the local CA, and the alerts shown on every console page.

All of it comes from the server's `CertificateCare` (certs/care.py) and certificate store; renewing goes
through `CertificateCare.renew_now`, the code path of `parlour cert renew`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from appliance.certs.acme.state import AcmeStatus
from appliance.certs.care import CertificateCare, CertificateView
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


class CertificateDesk:
    """Certificates of one running server, for the console and the API."""

    def __init__(self, care: CertificateCare | None, store: CertificateStore | None,
                 config: Callable[[], Config]) -> None:
        self.care = care
        self.store = store
        self.config = config

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
