"""The OCSP fetcher against a real responder (`openssl ocsp` on loopback): good, revoked, responder down
and back, renewal, certificates without a responder, responses that must be refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from appliance.certs import ocsp as ocsp_module
from appliance.certs.ocsp import OcspError, OcspFetcher, verify_response
from appliance.certs.store import CertificateStore
from tests.ocspca import OcspCa

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command (Debian openssl)")

NAMES = ["ocsp.parlour.test"]


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[OcspCa]:
    authority = OcspCa(tmp_path / "ca")
    try:
        yield authority
    finally:
        authority.stop()


def fetcher_for(tmp_path: Path, chain: Path, key: Path) -> tuple[CertificateStore, OcspFetcher]:
    store = CertificateStore(tmp_path / "state")
    store.add(chain, key)
    return store, OcspFetcher(tmp_path / "state", store.info)


async def until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_good_response_is_verified_kept_on_disk_and_reused(ca: OcspCa, tmp_path: Path) -> None:
    chain, key, serial = ca.issue(NAMES, tmp_path / "served")
    ca.start()
    store, fetcher = fetcher_for(tmp_path, chain, key)
    await fetcher.refresh()
    info = store.info()[0]
    state = fetcher.state_of(info)
    assert state is not None and state.status == "good", state
    der = fetcher.staple_for(info.fingerprint_sha256)
    assert der is not None
    response = ocsp.load_der_ocsp_response(der)
    assert response.serial_number == serial and response.certificate_status == ocsp.OCSPCertStatus.GOOD
    saved = tmp_path / "state" / "ocsp" / f"{info.fingerprint_sha256}.der"
    assert saved.read_bytes() == der
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert state.next_update is not None and state.this_update is not None
    # Refetched at half the validity (10 minutes here), not before.
    assert 4 * 60 <= state.due - time.monotonic() <= 5 * 60 + 1
    # A restart staples what was saved before the responder answers again.
    ca.stop()
    again = OcspFetcher(tmp_path / "state", store.info)
    again.states[info.fingerprint_sha256] = again._first_state(info)
    assert again.staple_for(info.fingerprint_sha256) == der
    assert again.any_staple()
    # Switched off: nothing to staple.
    off = OcspFetcher(tmp_path / "state", store.info, enabled=lambda: False)
    await off.refresh()
    assert off.staple_for(info.fingerprint_sha256) is None and not off.any_staple()


async def test_revoked_answer_is_kept_and_reported(ca: OcspCa, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    chain, key, serial = ca.issue(NAMES, tmp_path / "served")
    ca.revoke(serial)
    ca.start()
    store, fetcher = fetcher_for(tmp_path, chain, key)
    await fetcher.refresh()
    state = fetcher.state_of(store.info()[0])
    assert state is not None and state.status == "revoked" and state.revoked_at is not None
    assert fetcher.staple_for(store.info()[0].fingerprint_sha256) == state.der
    assert any(r.levelname == "ERROR" and "REVOKED" in r.getMessage() for r in caplog.records)


async def test_responder_down_retries_with_backoff_until_it_answers(ca: OcspCa, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocsp_module, "RETRY_FIRST", 0.3)
    chain, key, _serial = ca.issue(NAMES, tmp_path / "served")
    store, fetcher = fetcher_for(tmp_path, chain, key)
    task = asyncio.create_task(fetcher.run())
    try:
        info = store.info()[0]
        await until(lambda: fetcher.fetch_failures >= 2)
        state = fetcher.state_of(info)
        assert state is not None and state.status == "failing" and state.failures >= 2 and state.error
        assert fetcher.staple_for(info.fingerprint_sha256) is None and not fetcher.any_staple()
        ca.start()
        await until(lambda: fetcher.staple_for(info.fingerprint_sha256) is not None)
        assert state.status == "good" and state.failures == 0
    finally:
        task.cancel()


async def test_renewed_certificate_is_fetched_and_the_old_one_forgotten(ca: OcspCa, tmp_path: Path) -> None:
    chain, key, first = ca.issue(NAMES, tmp_path / "served")
    renewed_chain, renewed_key, second = ca.issue(NAMES, tmp_path / "renewed")
    ca.start()
    store, fetcher = fetcher_for(tmp_path, chain, key)
    task = asyncio.create_task(fetcher.run())
    try:
        old = store.info()[0].fingerprint_sha256
        await until(lambda: fetcher.staple_for(old) is not None)
        shutil.copy(renewed_chain, chain)  # a renewal: the same files, a new certificate
        shutil.copy(renewed_key, key)
        assert store.reload()
        fetcher.wake()
        new = store.info()[0].fingerprint_sha256
        await until(lambda: fetcher.staple_for(new) is not None, timeout=5)
        assert old not in fetcher.states
        assert ocsp.load_der_ocsp_response(fetcher.staple_for(new) or b"").serial_number == second != first
    finally:
        task.cancel()


async def test_certificate_without_responder_gets_no_staple(ca: OcspCa, tmp_path: Path) -> None:
    chain, key, _serial = ca.issue(NAMES, tmp_path / "served", ocsp=False)
    store, fetcher = fetcher_for(tmp_path, chain, key)
    store.ensure_self_signed(["local.parlour.test"])  # the local CA's certificate names no responder either
    await fetcher.refresh()
    assert {s.status for s in fetcher.states.values()} == {"no-url"}
    assert fetcher.fetches == 0 and not fetcher.any_staple()


async def test_responses_that_must_not_be_stapled_are_refused(ca: OcspCa, tmp_path: Path) -> None:
    chain, _key, _serial = ca.issue(NAMES, tmp_path / "served")
    other, _k, _s = ca.issue(["other.parlour.test"], tmp_path / "other")
    leaf, issuer = x509.load_pem_x509_certificates(chain.read_bytes())
    other_leaf = x509.load_pem_x509_certificates(other.read_bytes())[0]
    now = dt.datetime.now(dt.UTC)

    def signed(cert: x509.Certificate, by_key: ec.EllipticCurvePrivateKey, responder: x509.Certificate,
               this_update: dt.datetime = now, next_update: dt.datetime = now + dt.timedelta(hours=1)) -> bytes:
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=cert, issuer=issuer, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=this_update, next_update=next_update, revocation_time=None, revocation_reason=None,
        ).responder_id(ocsp.OCSPResponderEncoding.NAME, responder)
        return builder.sign(by_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    # Signed by the issuer itself: accepted.
    assert verify_response(signed(leaf, ca.key, ca.cert), leaf, issuer).serial_number == leaf.serial_number
    stranger = ec.generate_private_key(ec.SECP256R1())
    impostor = (x509.CertificateBuilder().subject_name(ca.cert.subject).issuer_name(ca.cert.subject)
                .public_key(stranger.public_key()).serial_number(7).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=1)).sign(stranger, hashes.SHA256()))
    def responder(name: str, issued_by: ec.EllipticCurvePrivateKey, *usages: x509.ObjectIdentifier) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string(f"CN={name}"))
                   .issuer_name(ca.cert.subject).public_key(stranger.public_key()).serial_number(8)
                   .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1)))
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        return builder.sign(issued_by, hashes.SHA256())

    def delegated(responder_cert: x509.Certificate) -> bytes:
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=leaf, issuer=issuer, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=now, next_update=now + dt.timedelta(hours=1), revocation_time=None, revocation_reason=None,
        ).responder_id(ocsp.OCSPResponderEncoding.NAME, responder_cert).certificates([responder_cert])
        return builder.sign(stranger, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    signing = x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING
    # A responder the issuer delegated: accepted.
    assert verify_response(delegated(responder("delegate", ca.key, signing)), leaf, issuer)
    refusals = {
        "lacks id-kp-OCSPSigning": delegated(responder("no usage", ca.key)),
        "not issued by": delegated(responder("self-made", stranger, signing)),
        "signature": signed(leaf, stranger, impostor),  # names the issuer, signed by another key
        "another certificate": signed(other_leaf, ca.key, ca.cert),
        "expired": signed(leaf, ca.key, ca.cert, now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)),
        "future": signed(leaf, ca.key, ca.cert, now + dt.timedelta(hours=1), now + dt.timedelta(hours=2)),
        "unauthorized": ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER),
    }
    for why, der in refusals.items():
        with pytest.raises(OcspError) as refused:
            verify_response(der, leaf, issuer)
        assert why in str(refused.value) or why in {"another certificate", "unauthorized"}, (why, refused.value)
