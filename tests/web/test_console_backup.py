"""The console's Backup page over real HTTP: the last daily backup, and "download backup" (admin only, a
POST with the CSRF token, streamed, nothing left behind)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from appliance.services.scheduled_backups import BackupSchedule
from tests.integration.harness import Harness
from tests.web.console_helpers import admin_login, csrf_of, http_session


async def test_the_last_backup_and_a_download(console_server: Harness, tmp_path: Path) -> None:
    server = console_server
    base = f"http://127.0.0.1:{server.http_port}"
    folder = tmp_path / "state" / "backups"
    async with http_session() as anonymous:
        response = await anonymous.post(f"{base}/admin/backup/download", data={"csrf": "x"}, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/admin/login")
    async with http_session() as http:
        status, _ = await admin_login(http, base)
        assert status == 200
        page = await (await http.get(f"{base}/admin/backup")).text()
        assert "Every day at 03:30" in page and "No daily backup has been made yet." in page

        done = await BackupSchedule(lambda: server.server.config).run_once()
        assert done.ok
        page = await (await http.get(f"{base}/admin/backup")).text()
        assert done.file in page and f"{done.size:,} bytes" in page and "Succeeded" in page

        refused = await http.post(f"{base}/admin/backup/download", data={"csrf": "wrong"})
        assert refused.status == 403 and "CSRF" in await refused.text()
        response = await http.post(f"{base}/admin/backup/download", data={"csrf": csrf_of(page)})
        assert response.status == 200 and response.headers["Content-Type"] == "application/gzip"
        assert response.headers["Content-Disposition"].startswith('attachment; filename="parlour-backup-')
        body = await response.read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert "state/parlour.db" in tar.getnames()
    assert manifest["counts"]["accounts"] == 1 and manifest["hosts"] == ["localhost"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([done.file, "last-backup.json"])  # nothing left
