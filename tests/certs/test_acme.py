"""ACME pieces without a CA: pre-flight against real sockets, renewal policy, challenge answers, messages."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509

from appliance.certs.acme.challenges import ChallengeResponder, tls_alpn_certificate
from appliance.certs.acme.client import _retry_after
from appliance.certs.acme.http01 import redirect_app
from appliance.certs.acme.preflight import Preflight, is_local_address
from appliance.certs.acme.problems import CertProblem
from appliance.certs.acme.renewal import BACKOFF_MAX, backoff, renewal_due
from appliance.certs.acme.state import AcmeState, AcmeStatus
from appliance.certs.store import CertificateInfo
from tests.integration.harness import free_port


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(name: str) -> list[str]:
        return table.get(name, [])
    return resolve


async def serve(responder: ChallengeResponder, port: int) -> web.AppRunner:
    runner = web.AppRunner(redirect_app(responder, 5443))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_preflight_passes_through_the_own_listener() -> None:
    responder, port = ChallengeResponder(), free_port()
    runner = await serve(responder, port)
    try:
        problems = await Preflight(responder, resolver({"a.test": ["127.0.0.1"]}), port=port).check(["a.test"])
    finally:
        await runner.cleanup()
    assert problems == []
    assert responder.answer("anything") is None  # the probe token was withdrawn


async def test_preflight_explains_unresolvable_and_unreachable_names() -> None:
    responder, port = ChallengeResponder(), free_port()  # nothing listens on port
    problems = await Preflight(responder, resolver({"a.test": ["127.0.0.1"]}), port=port).check(
        ["a.test", "gone.test"])
    by_name = {p.name: p for p in problems}
    assert by_name["gone.test"].message == "gone.test does not resolve: DNS has no address (A or AAAA record) for it."
    unreachable = by_name["a.test"]
    assert unreachable.severity == "error"
    assert unreachable.message == (
        f"Port {port} on a.test cannot be reached (127.0.0.1: connection refused: nothing listens there).")
    assert unreachable.hint.startswith(f"The certificate authority checks a.test on port {port}: open port")
    assert "Traceback" not in str(unreachable)


async def test_preflight_sees_another_web_server() -> None:
    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner, port = web.AppRunner(app), free_port()
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        [problem] = await Preflight(ChallengeResponder(), resolver({"a.test": ["127.0.0.1"]}), port=port).check(
            ["a.test"])
    finally:
        await runner.cleanup()
    assert problem.message.startswith(f"Port {port} on a.test answers, but not with Parlour's check file")


async def test_preflight_foreign_address_is_a_warning() -> None:
    [*problems] = await Preflight(ChallengeResponder(), resolver({"a.test": ["192.0.2.7"]}), port=free_port(),
                                  ).check(["a.test"])
    assert problems[0].message == "a.test resolves to 192.0.2.7, which is not an address of this machine."
    assert problems[0].severity == "warning"


async def test_tls_alpn_needs_a_tls_listener_on_the_port() -> None:
    [problem] = await Preflight(ChallengeResponder(), resolver({}), "tls-alpn-01", 443, (5223, 5443)).check([])
    assert problem.message == "TLS-ALPN-01 is checked on port 443, but no TLS listener of Parlour uses that port."


def test_is_local_address() -> None:
    assert is_local_address("127.0.0.1")
    assert not is_local_address("192.0.2.7")  # TEST-NET-1 is never assigned


def test_webroot_mode_writes_and_removes_token_files(tmp_path: Path) -> None:
    responder = ChallengeResponder(webroot=tmp_path)
    responder.publish_http("tok", "tok.thumb")
    path = tmp_path / ".well-known" / "acme-challenge" / "tok"
    assert path.read_text() == "tok.thumb" and path.stat().st_mode & 0o777 == 0o644
    responder.withdraw_http("tok")
    assert not path.exists()


def test_tls_alpn_certificate_carries_the_key_authorization_digest() -> None:
    cert_pem, _ = tls_alpn_certificate("a.test", "token.thumbprint")
    cert = x509.load_pem_x509_certificate(cert_pem)
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"))
    assert ext.critical
    assert ext.value.value == b"\x04\x20" + hashlib.sha256(b"token.thumbprint").digest()


def _info(days: int, left: float) -> CertificateInfo:
    now = dt.datetime.now(dt.UTC)
    after = now + dt.timedelta(days=left)
    return CertificateInfo(("a.test",), "", "", 1, after - dt.timedelta(days=days), after, False, "", Path(),
                           Path())


def test_renewal_when_a_third_of_the_lifetime_is_left() -> None:
    now = dt.datetime.now(dt.UTC)
    assert not renewal_due(_info(90, 31), now)
    assert renewal_due(_info(90, 29.9), now)
    assert renewal_due(_info(6, 1.9), now)  # short-lived certificates too


def test_backoff_doubles_caps_and_respects_retry_after() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [60, 120, 240]
    assert backoff(30) == BACKOFF_MAX
    assert backoff(1, retry_after=3600) == 3600
    assert _retry_after("120") == 120
    in_two_hours = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 7100 < (_retry_after(in_two_hours) or 0) <= 7200


def test_status_round_trip(tmp_path: Path) -> None:
    state = AcmeState(tmp_path)
    now = dt.datetime.now(dt.UTC)
    status = AcmeStatus(False, now, ("a.test",), (CertProblem.does_not_resolve("a.test"),), now, 2)
    state.save_status(status)
    assert state.load_status() == status


async def test_port_80_redirects_everything_else_to_https() -> None:
    responder, port = ChallengeResponder(), free_port()
    responder.publish_http("t1", "t1.k")
    runner = await serve(responder, port)
    try:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/.well-known/acme-challenge/t1") as r:
                assert r.status == 200 and await r.text() == "t1.k"
            async with session.get(f"http://127.0.0.1:{port}/admin?x=1", allow_redirects=False) as r:
                assert r.status == 301 and r.headers["Location"] == "https://127.0.0.1:5443/admin?x=1"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("kind,start", [
    ("urn:ietf:params:acme:error:connection", "The authority could not connect to a.test on port 80"),
    ("urn:ietf:params:acme:error:dns", "The authority's DNS lookup of a.test failed"),
    ("urn:ietf:params:acme:error:unauthorized", "The authority reached a.test but got a wrong answer"),
])
def test_challenge_failure_hints(kind: str, start: str) -> None:
    problem = CertProblem.challenge_failed("a.test", kind, "detail", 80)
    assert problem.message == "The certificate authority could not verify a.test: detail"
    assert problem.hint.startswith(start)


async def test_expiring_certificate_warns_admins_once_a_day(tmp_path: Path) -> None:
    from appliance.certs import selfsigned
    from appliance.certs.acme.renewal import RenewalScheduler
    from appliance.certs.store import CertificateStore

    now = dt.datetime.now(dt.UTC)
    leaf = selfsigned.ensure_self_signed(tmp_path / "old", ["a.test"], now=now - dt.timedelta(days=390))
    store = CertificateStore(tmp_path)
    store.add(leaf.chain, leaf.key)  # served as a configured certificate: the scheduler watches it
    sent: list[str] = []

    async def notify(text: str) -> None:
        sent.append(text)

    clock = [now]
    scheduler = RenewalScheduler(store, None, notify=notify, clock=lambda: clock[0])
    await scheduler.tick()
    await scheduler.tick()
    assert len(sent) == 1 and "The certificate for a.test" in sent[0] and "days left" in sent[0]
    clock[0] = now + dt.timedelta(days=1, minutes=1)
    await scheduler.tick()
    assert len(sent) == 2


def test_network_failures_are_reduced_to_a_plain_reason() -> None:
    from appliance.certs.acme.client import _short

    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError(
                "HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /dir "
                "(Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object>: Failed'))"
            ) from inner
    except RuntimeError as exc:
        assert _short(exc) == "the connection was refused"


@pytest.mark.parametrize("kind,start", [
    ("urn:ietf:params:acme:error:caa", "A CAA record in DNS forbids this authority"),
    ("urn:ietf:params:acme:error:invalidContact", "The authority refuses the contact address: set acme.email"),
    ("urn:ietf:params:acme:error:rejectedIdentifier", "The authority will not issue a certificate"),
    ("urn:ietf:params:acme:error:userActionRequired", "The authority needs you to do something first"),
    ("urn:ietf:params:acme:error:serverInternal", "The authority has a problem of its own"),
    ("urn:ietf:params:acme:error:somethingNew", "Parlour tries again later; the authority's message above"),
])
def test_authority_errors_get_a_hint_per_problem_type(kind: str, start: str) -> None:
    problem = CertProblem.authority_error("detail", kind)
    assert problem.message == "The certificate authority refused the request: detail"
    assert problem.hint.startswith(start)
