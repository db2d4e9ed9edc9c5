"""`parlour cert import` and `cert status` against a running server: checks at import, served at once."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from appliance.app import Parlour
from appliance.certs.care import imported_dir
from appliance.certs.names import hosted_names
from appliance.certs.selfsigned import ensure_self_signed
from appliance.cli import cert as cert_cli
from tests.integration.harness import make_config


def files(made: object) -> argparse.Namespace:
    return argparse.Namespace(chain=made.chain, key=made.key)  # type: ignore[attr-defined]


async def served_issuer(port: int, name: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).issuer.rfc4514_string()
    finally:
        writer.close()


async def test_import_is_checked_and_served_without_a_restart(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path / "state")
    host = config.hosts[0].name
    now = dt.datetime.now(dt.UTC)
    good = ensure_self_signed(tmp_path / "theirs", [host], hostname="their-ca")
    expired = ensure_self_signed(tmp_path / "old", [host], hostname="old-ca", now=now - dt.timedelta(days=800))
    unrelated = ensure_self_signed(tmp_path / "unrelated", ["unrelated.example"], hostname="unrelated-ca")
    server = Parlour(config)
    await server.start()
    try:
        port = server.ports["c2s_direct_tls"]
        local_issuer = await served_issuer(port, host)

        assert cert_cli._import(files(expired), config) == 1
        assert f"Cannot import {expired.chain}: it expired on" in capsys.readouterr().err
        assert cert_cli._import(files(unrelated), config) == 1
        assert f"it is for unrelated.example, but this server hosts {host}" in capsys.readouterr().err
        assert cert_cli._import(argparse.Namespace(chain=good.chain, key=unrelated.key), config) == 1
        assert "does not match the first certificate" in capsys.readouterr().err
        assert not imported_dir(config).exists() or not any(imported_dir(config).iterdir())

        assert cert_cli._import(files(good), config) == 0
        assert "a running server uses it within" in capsys.readouterr().out
        async with asyncio.timeout(15):  # no restart: the server picks it up from the folder
            while (issuer := await served_issuer(port, host)) == local_issuer:
                await asyncio.sleep(0.2)
        assert "their-ca" in issuer
    finally:
        await server.stop()


def test_status_fails_for_an_expired_certificate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path / "state")
    host = config.hosts[0].name
    ensure_self_signed(config.server.state_dir / "certs", hosted_names(config))  # the server's own, valid
    expired = ensure_self_signed(tmp_path / "old", [host], hostname="old-ca",
                                 now=dt.datetime.now(dt.UTC) - dt.timedelta(days=800))
    folder = imported_dir(config)
    folder.mkdir(parents=True)
    shutil.copy(expired.chain, folder / "old.pem")  # copied by hand, past the import checks
    shutil.copy(expired.key, folder / "old.key")
    assert cert_cli._status(argparse.Namespace(), config) == 1
    assert "EXPIRED" in capsys.readouterr().out
