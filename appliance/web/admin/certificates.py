"""Certificates in the console (/admin/certificates) and the API (/api/v1/certificates): what is served,
the ACME status with the last problem and its fix, "renew now", and the local CA to download."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from appliance.certs.acme.state import AcmeStatus
from appliance.services import Services
from appliance.services.ca_notes import CA_CHECK, CA_INSTALL_NOTES, CA_INTRO, ca_fingerprint
from appliance.services.certificates import KINDS, CertificateDesk
from appliance.services.errors import ServiceError
from appliance.util.i18n import _
from appliance.web.admin.api import endpoint
from appliance.web.admin.auth import ConsoleSession
from appliance.web.admin.console import _back, _page, admin_page
from appliance.web.keys import ADMIN

PAGE = "/admin/certificates"
CA_TYPE = "application/x-x509-ca-cert"  # what phones and browsers offer to install as a CA
CA_FILENAME = "ca.crt"  # the name the install notes use; Windows installs .crt files on double-click
CA_PATH = "ca.pem"


def desk(request: web.Request) -> CertificateDesk:
    return request.app[ADMIN].certificates


def _ca_download(pem: bytes | None) -> web.Response:
    if pem is None:
        raise ServiceError(_("There is no local CA yet: the server makes one at its first start."))
    return web.Response(body=pem, content_type=CA_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{CA_FILENAME}"'})


# -- console ----------------------------------------------------------------------------------------

@admin_page
async def certificates_page(request: web.Request, session: ConsoleSession) -> web.Response:
    d = desk(request)
    pem = d.ca_pem()
    subject, fingerprint = ca_fingerprint(pem) if pem is not None else ("", "")
    return _page(request, session, "admin/certificates.html", certificates=d.certificates(), kinds=KINDS,
                 ocsp=d.ocsp_report(),
                 acme_enabled=d.acme_enabled, acme=d.acme_status(), ca_subject=subject, ca_fingerprint=fingerprint,
                 ca_intro=CA_INTRO, ca_notes=CA_INSTALL_NOTES, ca_check=CA_CHECK)


@admin_page
async def renew(request: web.Request, session: ConsoleSession) -> web.Response:
    try:
        status = await desk(request).renew(session.jid)
    except ServiceError as exc:
        raise _back(session, PAGE, "error", str(exc)) from None
    if status.ok:
        raise _back(session, PAGE, "ok", _("The certificate was renewed: new connections use it now."))
    raise _back(session, PAGE, "error", _("The renewal failed. What went wrong and how to fix it is shown "
                                          "under Automatic certificates."))


@admin_page
async def ca_download(request: web.Request, session: ConsoleSession) -> web.Response:
    try:
        return _ca_download(desk(request).ca_pem())
    except ServiceError as exc:
        raise _back(session, PAGE, "error", str(exc)) from None


# -- API --------------------------------------------------------------------------------------------

def _status_json(status: AcmeStatus | None) -> dict[str, Any] | None:
    if status is None:
        return None
    return {"ok": status.ok, "when": status.when.isoformat(), "names": list(status.names),
            "problems": [p.to_json() for p in status.problems],
            "next_attempt": status.next_attempt.isoformat() if status.next_attempt else None}


@endpoint
async def list_certificates(request: web.Request, _s: Services, _actor: str) -> Any:
    d = desk(request)
    now = dt.datetime.now(dt.UTC)
    return {
        "certificates": [{"names": list(v.info.names), "issuer": v.info.issuer, "kind": v.kind,
                          "not_after": v.info.not_after.isoformat(), "days_left": v.days_left,
                          "expiring": v.expiring, "fingerprint_sha256": v.info.fingerprint_sha256}
                         for v in d.certificates(now)],
        "acme": {"enabled": d.acme_enabled, "last_attempt": _status_json(d.acme_status())},
        "alerts": d.alerts(),
    }


@endpoint
async def renew_certificate(request: web.Request, _s: Services, actor: str) -> Any:
    status = await desk(request).renew(actor)
    return web.json_response(_status_json(status), status=200 if status.ok else 502)


@endpoint
async def ca_certificate(request: web.Request, _s: Services, _actor: str) -> Any:
    return _ca_download(desk(request).ca_pem())


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(PAGE, certificates_page)
    r.add_post(f"{PAGE}/renew", renew)
    r.add_get(f"{PAGE}/{CA_PATH}", ca_download)
    r.add_get("/api/v1/certificates", list_certificates)
    r.add_post("/api/v1/certificates/renew", renew_certificate)
    r.add_get(f"/api/v1/certificates/{CA_PATH}", ca_certificate)


__all__ = ["setup"]
