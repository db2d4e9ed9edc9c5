"""Backups in the console (/admin/backup): the last daily backup, and a fresh one to download."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from appliance.services.backup import default_name
from appliance.services.errors import ServiceError
from appliance.services.scheduled_backups import BackupDesk
from appliance.web.admin.auth import ConsoleSession
from appliance.web.admin.console import _back, _page, admin_page
from appliance.web.keys import ADMIN

PAGE = "/admin/backup"
CHUNK = 256 * 1024


def desk(request: web.Request) -> BackupDesk:
    return request.app[ADMIN].backups


@admin_page
async def backup_page(request: web.Request, session: ConsoleSession) -> web.Response:
    d = desk(request)
    return _page(request, session, "admin/backup.html", last=d.last(), schedule=d.schedule, folder=d.folder)


@admin_page
async def download(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
    """A POST (CSRF-checked): it makes a new backup, streamed from disk and deleted afterwards."""
    try:
        path = await desk(request).fresh(session.jid)
    except ServiceError as exc:
        raise _back(session, PAGE, "error", str(exc)) from None
    try:
        response = web.StreamResponse(headers={
            "Content-Type": "application/gzip", "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{default_name(datetime.now(UTC))}"'})
        response.content_length = path.stat().st_size
        await response.prepare(request)
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        path.unlink(missing_ok=True)


def setup(app: web.Application) -> None:
    app.router.add_get(PAGE, backup_page)
    app.router.add_post(f"{PAGE}/download", download)
