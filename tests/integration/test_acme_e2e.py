"""End to end against a real Pebble: Parlour gets its certificate over ACME and serves it everywhere.

Pebble validates through its fake DNS (pebble-challtestsrv) at 127.0.0.1, on the ports Parlour's HTTP-01
listener and HTTPS listener use. Skipped only when the `pebble` package is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import shutil
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from appliance.app import Parlour
from appliance.certs.acme.problems import CertProblem
from appliance.certs.acme.state import AcmeState
from appliance.certs.names import hosted_names
from appliance.cli import cert as cert_cli
from appliance.config.model import AcmeConfig, HostConfig
from tests.integration.harness import free_port, make_config
from tests.integration.pebble import CHALLTESTSRV, MISSING, PEBBLE, Pebble, run_pebble

pytestmark = pytest.mark.skipif(not (PEBBLE and CHALLTESTSRV), reason=MISSING)

DOMAIN = "xmpp.test"


class Ports:
    def __init__(self) -> None:
        self.http01 = free_port()
        self.https = free_port()


@pytest.fixture
def ports() -> Ports:
    return Ports()


@pytest.fixture
def pebble(tmp_path: Path, ports: Ports) -> Iterator[Pebble]:
    with run_pebble(tmp_path / "pebble", http_port=ports.http01, tls_port=ports.https) as running:
        yield running


def acme_server(tmp_path: Path, pebble: Pebble, ports: Ports, *, names: tuple[str, ...] = (DOMAIN,),
                unresolvable: tuple[str, ...] = (), **acme: object) -> Parlour:
    base = make_config(tmp_path / "state")
    settings = AcmeConfig(
        enabled=True, directory=pebble.directory, email=f"admin@{DOMAIN}", agree_tos=True,
        http_port=ports.http01, tls_port=ports.https, ca_bundle=pebble.listener_ca,
        nameservers=(pebble.dns,),
    )
    config = replace(
        base, hosts=tuple(HostConfig(n) for n in names), acme=replace(settings, **acme),
        http=replace(base.http, tls_port=ports.https),
    )
    for name in hosted_names(config):  # the host and its service names (pubsub., ...), all in one order
        if name not in unresolvable:
            pebble.add_a(name)
    return Parlour(config)


@pytest.fixture
async def started(tmp_path: Path, pebble: Pebble, ports: Ports) -> AsyncIterator[Parlour]:
    server = acme_server(tmp_path, pebble, ports)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_for_acme(server: Parlour, serial: int | None = None, timeout: float = 60) -> x509.Certificate:
    """The ACME certificate the store serves, once there is one (other than ``serial``)."""
    manager = server.cert_care.manager
    async with asyncio.timeout(timeout):
        while True:
            info = manager.current()
            if info is not None and info.serial != serial:
                return x509.load_pem_x509_certificates(info.chain.read_bytes())[0]
            await asyncio.sleep(0.1)


async def wait_for_status(server: Parlour, timeout: float = 60):  # type: ignore[no-untyped-def]
    state = AcmeState(server.config.server.state_dir)
    async with asyncio.timeout(timeout):
        while (status := state.load_status()) is None:
            await asyncio.sleep(0.1)
    return status


def client_context(pebble: Pebble, alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=pebble.roots_pem().decode())
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def peer(ssl_obj: ssl.SSLObject | ssl.SSLSocket) -> x509.Certificate:
    der = ssl_obj.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def direct_tls(port: int, ctx: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=DOMAIN)


async def read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    data = b""
    async with asyncio.timeout(10):
        while marker not in data:
            chunk = await reader.read(4096)
            assert chunk, data
            data += chunk
    return data


STREAM = (f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams'>").encode()


def starttls_certificate(port: int, ctx: ssl.SSLContext) -> x509.Certificate:
    """Connect to the c2s port, negotiate STARTTLS, verify the chain and name; the server's certificate."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(STREAM)
        data = b""
        while b"</stream:features>" not in data:
            data += sock.recv(4096)
        assert b"urn:ietf:params:xml:ns:xmpp-tls" in data
        sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        data = b""
        while b"proceed" not in data:
            data += sock.recv(4096)
        with ctx.wrap_socket(sock, server_hostname=DOMAIN) as tls:
            return peer(tls)


def assert_pebble_leaf(cert: x509.Certificate, expected: x509.Certificate) -> None:
    assert cert.serial_number == expected.serial_number
    assert "Pebble Intermediate CA" in cert.issuer.rfc4514_string()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert DOMAIN in san.get_values_for_type(x509.DNSName)


async def test_http01_certificate_served_on_starttls_direct_tls_and_https(started: Parlour, pebble: Pebble) -> None:
    issued = await wait_for_acme(started)
    ctx = client_context(pebble)  # verifies the chain against Pebble's root and the name xmpp.test
    starttls = await asyncio.to_thread(starttls_certificate, started.ports["c2s"], ctx)
    assert_pebble_leaf(starttls, issued)
    _, writer = await direct_tls(started.ports["c2s_direct_tls"], client_context(pebble, ["xmpp-client"]))
    assert_pebble_leaf(peer(writer.get_extra_info("ssl_object")), issued)
    writer.close()
    _, writer = await direct_tls(started.ports["https"], client_context(pebble, ["http/1.1"]))
    assert_pebble_leaf(peer(writer.get_extra_info("ssl_object")), issued)
    writer.close()
    status = await wait_for_status(started)
    assert status.ok and status.names == tuple(hosted_names(started.config))
    san = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == set(status.names)
    state = AcmeState(started.config.server.state_dir)
    assert state.account.exists() and state.order.exists() and state.account_key.stat().st_mode & 0o077 == 0


async def test_renewal_at_a_third_of_the_lifetime_with_hot_reload(started: Parlour, pebble: Pebble) -> None:
    first = await wait_for_acme(started)
    await wait_for_status(started)
    ctx = client_context(pebble, ["xmpp-client"])
    before_reader, before_writer = await direct_tls(started.ports["c2s_direct_tls"], ctx)
    assert peer(before_writer.get_extra_info("ssl_object")).serial_number == first.serial_number

    scheduler = started.cert_care.scheduler
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    scheduler.clock = lambda: first.not_valid_after_utc - lifetime / 3 - dt.timedelta(days=1)
    await scheduler.tick()
    assert started.cert_care.manager.current().serial == first.serial_number  # not due yet: nothing ordered
    scheduler.clock = lambda: first.not_valid_after_utc - lifetime / 3 + dt.timedelta(minutes=1)
    await scheduler.tick()
    second = await wait_for_acme(started, serial=first.serial_number, timeout=5)

    _, after_writer = await direct_tls(started.ports["c2s_direct_tls"], ctx)
    assert_pebble_leaf(peer(after_writer.get_extra_info("ssl_object")), second)
    after_writer.close()
    # The connection opened before the renewal still works, with the old certificate.
    before_writer.write(STREAM)
    assert b"stream:features" in await read_until(before_reader, b"</stream:features>")
    assert peer(before_writer.get_extra_info("ssl_object")).serial_number == first.serial_number
    before_writer.close()


async def test_tls_alpn01(tmp_path: Path, pebble: Pebble, ports: Ports) -> None:
    server = acme_server(tmp_path, pebble, ports, challenge="tls-alpn-01")
    await server.start()
    try:
        issued = await wait_for_acme(server)
        _, writer = await direct_tls(server.ports["https"], client_context(pebble, ["http/1.1"]))
        assert_pebble_leaf(peer(writer.get_extra_info("ssl_object")), issued)
        writer.close()
        # Pebble really validated, and not over HTTP-01: nothing listens on the HTTP-01 port.
        assert "set VALID by completed challenge" in pebble.log.read_text()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", ports.http01), timeout=5).close()
    finally:
        await server.stop()


async def certified_without(server: Parlour, left_out: str) -> CertProblem:
    """Start ``server``: it must get a certificate for DOMAIN without ``left_out``; the problem named for it."""
    await server.start()
    try:
        issued = await wait_for_acme(server)
        status = await wait_for_status(server)
    finally:
        await server.stop()
    san = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert left_out not in san.get_values_for_type(x509.DNSName)
    assert DOMAIN in san.get_values_for_type(x509.DNSName)
    assert not status.ok
    [problem] = [p for p in status.problems if p.name == left_out]
    return problem


async def test_name_that_does_not_resolve_is_explained_and_the_rest_certified(
    tmp_path: Path, pebble: Pebble, ports: Ports, capsys: pytest.CaptureFixture[str]
) -> None:
    server = acme_server(tmp_path, pebble, ports, names=(DOMAIN, "missing.test"),
                          unresolvable=("missing.test",))
    problem = await certified_without(server, "missing.test")
    assert problem.message == "missing.test does not resolve: DNS has no address (A or AAAA record) for it."
    assert problem.hint.startswith("Create an A record (and an AAAA record for IPv6) for missing.test")
    # `parlour cert status` tells the same story, in plain words.
    assert cert_cli._status(argparse.Namespace(), server.config) == 1
    out = capsys.readouterr().out
    assert "Not covered by any certificate: missing.test" in out
    assert "error: missing.test does not resolve" in out and "fix: Create an A record" in out


async def test_failed_challenge_is_explained(tmp_path: Path, pebble: Pebble, ports: Ports) -> None:
    # Parlour's challenge listener is on another port than the one the CA checks ("port 80 forwarded
    # to the wrong place"): the pre-flight through Parlour's own port passes, the validation fails.
    server = acme_server(tmp_path, pebble, ports, http_port=free_port())
    await server.start()
    try:
        status = await wait_for_status(server)
    finally:
        await server.stop()
    assert not status.ok and server.cert_care.manager.current() is None
    problem = next(p for p in status.problems if p.name == DOMAIN)
    assert problem.message.startswith(f"The certificate authority could not verify {DOMAIN}: ")
    assert "connection refused" in problem.message.lower() or "connect" in problem.message.lower()
    assert problem.hint.startswith(f"The authority could not connect to {DOMAIN} on port ")
    assert status.next_attempt is not None and status.failures == 1


async def test_short_lived_certificates_are_renewed_by_the_timer_before_they_expire(
    tmp_path: Path, ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    # Pebble issues certificates living 45 seconds: the timer itself (no clock moved by the test) must
    # wake when a third of that is left and renew, so the served certificate never expires.
    caplog.set_level(logging.INFO, "appliance.certs.acme.renewal")
    with run_pebble(tmp_path / "pebble", http_port=ports.http01, tls_port=ports.https, validity=45) as pebble:
        server = acme_server(tmp_path, pebble, ports)
        await server.start()
        try:
            first = await wait_for_acme(server)
            lifetime = first.not_valid_after_utc - first.not_valid_before_utc
            assert lifetime <= dt.timedelta(seconds=46)
            second = await wait_for_acme(server, serial=first.serial_number, timeout=60)
            assert dt.datetime.now(dt.UTC) < first.not_valid_after_utc
            due = first.not_valid_after_utc - lifetime / 3
            assert second.not_valid_before_utc >= due - dt.timedelta(seconds=2)
            _, writer = await direct_tls(server.ports["c2s_direct_tls"], client_context(pebble, ["xmpp-client"]))
            assert peer(writer.get_extra_info("ssl_object")).serial_number == second.serial_number
            writer.close()
        finally:
            await server.stop()
    assert "Certificate for xmpp.test" in caplog.text and "renewal due since" in caplog.text


async def served_serial(port: int, pebble: Pebble, name: str = DOMAIN) -> int:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(pebble, ["xmpp-client"]),
                                              server_hostname=name)
    try:
        return peer(writer.get_extra_info("ssl_object")).serial_number
    finally:
        writer.close()


async def wait_served(server: Parlour, pebble: Pebble, serial: int, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while await served_serial(server.ports["c2s_direct_tls"], pebble) != serial:
            await asyncio.sleep(0.2)


def on_disk(server: Parlour) -> x509.Certificate:
    return x509.load_pem_x509_certificates(AcmeState(server.config.server.state_dir).chain.read_bytes())[0]


async def test_a_webroot_renewal_by_the_cli_is_served_at_once_and_recorded(
    tmp_path: Path, pebble: Pebble, ports: Ports, capsys: pytest.CaptureFixture[str]
) -> None:
    # A web server of the admin's publishes the webroot on the port Pebble checks; Parlour writes the
    # challenge files there, the running server and `parlour cert renew` alike.
    from aiohttp import web

    webroot = tmp_path / "webroot"
    (webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    app = web.Application()
    app.router.add_static("/.well-known/acme-challenge/", webroot / ".well-known" / "acme-challenge")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", ports.http01).start()
    server = acme_server(tmp_path, pebble, ports, webroot=webroot)
    await server.start()
    try:
        first = await wait_for_acme(server)
        await wait_for_status(server)
        assert await asyncio.to_thread(cert_cli._renew, argparse.Namespace(force=True), server.config) == 0
        renewed = on_disk(server)
        assert renewed.serial_number != first.serial_number
        await wait_served(server, pebble, renewed.serial_number)  # within a few seconds, no restart
        status = server.cert_care.acme_status()
        assert status.ok and status.by == "parlour cert renew"
        capsys.readouterr()
        assert cert_cli._status(argparse.Namespace(), server.config) == 0
        assert "by parlour cert renew: ok" in capsys.readouterr().out
    finally:
        await server.stop()
        await runner.cleanup()


async def test_cert_renew_asks_the_running_server_that_holds_the_port(
    started: Parlour, pebble: Pebble, capsys: pytest.CaptureFixture[str]
) -> None:
    first = await wait_for_acme(started)
    await wait_for_status(started)
    # The server holds the HTTP-01 port: the CLI cannot bind it and hands the renewal to the server.
    assert await asyncio.to_thread(cert_cli._renew, argparse.Namespace(force=True), started.config) == 0
    out = capsys.readouterr().out
    assert "busy: asking the running Parlour server to renew" in out and "New certificate for xmpp.test" in out
    renewed = on_disk(started)
    assert renewed.serial_number != first.serial_number
    await wait_served(started, pebble, renewed.serial_number)
    status = started.cert_care.acme_status()
    assert status.ok and status.by == "parlour cert renew (through the running server)" and status.request


async def foreign_tls_server(address: str, port: int, name: str, folder: Path) -> asyncio.Server:
    """Another machine's TLS server on ``address``: its own certificate, no acme-tls/1."""
    from appliance.certs.selfsigned import ensure_self_signed

    made = ensure_self_signed(folder, [name], hostname="elsewhere")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(made.chain, made.key)

    async def close(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(close, address, port, ssl=ctx)


async def test_a_name_that_fails_validation_is_left_out_and_keeps_its_old_certificate(
    tmp_path: Path, pebble: Pebble, ports: Ports, capsys: pytest.CaptureFixture[str]
) -> None:
    # TLS-ALPN-01: the pre-flight can only see that the port answers, so a name pointing at another
    # machine reaches the authority and fails there, which failed the whole order.
    server = acme_server(tmp_path, pebble, ports, names=(DOMAIN, "other.test"), challenge="tls-alpn-01")
    await server.start()
    elsewhere = None
    try:
        first = await wait_for_acme(server)
        assert "other.test" in first.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        # other.test moves to another machine (127.0.0.2), whose TLS server is not Parlour.
        elsewhere = await foreign_tls_server("127.0.0.2", ports.https, "other.test", tmp_path / "elsewhere")
        pebble.move_a("other.test", "127.0.0.2")
        status = await server.cert_care.renew_now()
        second = on_disk(server)
        assert second.serial_number != first.serial_number  # the good names got their certificate
        names = second.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert DOMAIN in names.get_values_for_type(x509.DNSName)
        assert "other.test" not in names.get_values_for_type(x509.DNSName)
        port = server.ports["c2s_direct_tls"]
        assert await served_serial(port, pebble, DOMAIN) == second.serial_number
        assert await served_serial(port, pebble, "other.test") == first.serial_number  # the old one, kept
        # Which name is missing, and why, in the status the console and `cert status` show.
        assert not status.ok
        by_name = {(p.name, p.severity): p for p in status.problems}
        assert by_name[("other.test", "error")].message.startswith(
            "The certificate authority could not verify other.test")
        assert by_name[("other.test", "warning")].message.startswith(
            "other.test is missing from the new certificate; the previous certificate still covers it until")
        capsys.readouterr()
        assert cert_cli._status(argparse.Namespace(), server.config) == 1
        assert "other.test is missing from the new certificate" in capsys.readouterr().out
    finally:
        await server.stop()
        if elsewhere is not None:
            elsewhere.close()


async def test_a_name_the_authority_refuses_gets_its_own_hint(tmp_path: Path, ports: Ports) -> None:
    with run_pebble(tmp_path / "pebble", http_port=ports.http01, tls_port=ports.https,
                    blocklist=(DOMAIN,)) as pebble:
        server = acme_server(tmp_path, pebble, ports)
        await server.start()
        try:
            status = await wait_for_status(server)
        finally:
            await server.stop()
    assert not status.ok
    [problem] = status.problems
    assert problem.message.startswith("The certificate authority refused the request: ")
    assert problem.hint.startswith("The authority will not issue a certificate for one of the hosted names")


async def test_a_forgotten_account_is_registered_again_by_itself(
    tmp_path: Path, ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "appliance.certs.acme.client")
    first_run = run_pebble(tmp_path / "pebble", http_port=ports.http01, tls_port=ports.https)
    pebble = first_run.__enter__()
    server = acme_server(tmp_path, pebble, ports)
    await server.start()
    try:
        first = await wait_for_acme(server)
        await wait_for_status(server)
        first_run.__exit__(None, None, None)
        # The authority restarts at the same address and has forgotten every account.
        with run_pebble(tmp_path / "pebble-again", http_port=ports.http01, tls_port=ports.https,
                        again=pebble) as restarted:
            shutil.copy(restarted.listener_ca, pebble.listener_ca)  # acme.ca_bundle names the first file
            for name in hosted_names(server.config):
                restarted.add_a(name)
            status = await server.cert_care.renew_now()
            assert status.ok, status.problems
            assert on_disk(server).serial_number != first.serial_number
    finally:
        await server.stop()
    assert "no longer knows Parlour's account; registering again" in caplog.text


async def test_the_challenge_port_is_bound_when_needed_not_only_at_start(tmp_path: Path, pebble: Pebble,
                                                                         ports: Ports) -> None:
    # Another program holds the HTTP-01 port while Parlour starts (bound, not listening: refused at once).
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", ports.http01))
    server = acme_server(tmp_path, pebble, ports)
    await server.start()
    try:
        status = await wait_for_status(server)
        assert not status.ok and server.cert_care.manager.current() is None
        blocker.close()  # the port is free now: the next attempt binds it and succeeds
        status = await server.cert_care.renew_now()
        assert status.ok, status.problems
        assert server.cert_care.manager.current() is not None
    finally:
        blocker.close()
        await server.stop()


async def test_the_start_up_banner_names_the_certificate_actually_served(
    started: Parlour, capsys: pytest.CaptureFixture[str]
) -> None:
    from appliance.cli import run as run_cli

    await wait_for_acme(started)
    run_cli._print_hint(started)  # also what a restart with the ACME certificate on disk prints
    line = next(x for x in capsys.readouterr().out.splitlines() if "Certificate:" in x)
    assert line.startswith("  Certificate:  from Pebble Intermediate CA") and "over ACME, valid until" in line


async def test_a_name_refused_by_policy_is_left_out_and_the_others_certified(tmp_path: Path, ports: Ports) -> None:
    with run_pebble(tmp_path / "pebble", http_port=ports.http01, tls_port=ports.https,
                    blocklist=("other.test",)) as pebble:
        problem = await certified_without(acme_server(tmp_path, pebble, ports, names=(DOMAIN, "other.test")),
                                          "other.test")
    assert problem.hint.startswith("The authority will not issue a certificate for one of the hosted names")
