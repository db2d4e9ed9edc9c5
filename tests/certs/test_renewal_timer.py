"""The renewal timer driven by an injected clock: it wakes when renewal is due and at the next attempt.

A small issuer stands in for the ACME manager here (it signs certificates of a chosen lifetime itself);
tests/integration/test_acme_e2e.py runs the same timer against a real Pebble with short-lived certificates.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.certs.acme.client import AcmeFailure
from appliance.certs.acme.problems import CertProblem
from appliance.certs.acme.renewal import CHECK_INTERVAL, RenewalScheduler, renewal_time
from appliance.certs.acme.state import AcmeState, AcmeStatus
from appliance.certs.store import CertificateInfo, CertificateStore

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def leaf_pem(name: str, not_before: dt.datetime, lifetime: dt.timedelta) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before)
            .not_valid_after(not_before + lifetime)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class Issuer:
    """Stands in for AcmeManager: issues certificates of ``lifetime`` at the fake time, or fails."""

    def __init__(self, state_dir: Path, store: CertificateStore, clock: list[dt.datetime],
                 lifetime: dt.timedelta) -> None:
        self.names = ("a.test",)
        self.state = AcmeState(state_dir)
        self.store, self.clock, self.lifetime = store, clock, lifetime
        self.last_problems: tuple[CertProblem, ...] = ()
        self.attempts: list[dt.datetime] = []
        self.failing = False

    def current(self) -> CertificateInfo | None:
        return next((i for i in self.store.info() if i.chain == self.state.chain), None)

    async def obtain(self, *, force: bool = False) -> CertificateInfo | None:
        self.attempts.append(self.clock[0])
        if self.failing:
            raise AcmeFailure([CertProblem.authority_error("the authority is down")])
        self.state.write_certificate(*leaf_pem("a.test", self.clock[0], self.lifetime))
        return self.store.add(self.state.chain, self.state.key)


class Stop(Exception):
    pass


async def run_for(scheduler: RenewalScheduler, clock: list[dt.datetime], until: dt.datetime) -> list[float]:
    """Run the timer loop with a sleep that moves the fake clock; stop once it passes ``until``."""
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        clock[0] += dt.timedelta(seconds=delay)
        if clock[0] > until:
            raise Stop

    scheduler._sleep = sleep
    with pytest.raises(Stop):
        await scheduler.run()
    return sleeps


def setup(tmp_path: Path, lifetime: dt.timedelta) -> tuple[RenewalScheduler, Issuer, list[dt.datetime]]:
    clock = [T0]
    store = CertificateStore(tmp_path)
    issuer = Issuer(tmp_path, store, clock, lifetime)
    chain, key = leaf_pem("a.test", T0, lifetime)
    issuer.state.write_certificate(chain, key)
    store.add(issuer.state.chain, issuer.state.key)
    scheduler = RenewalScheduler(store, issuer, clock=lambda: clock[0])  # type: ignore[arg-type]
    return scheduler, issuer, clock


async def test_a_certificate_living_30_minutes_is_renewed_when_due_and_before_it_expires(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lifetime = dt.timedelta(minutes=30)
    scheduler, issuer, clock = setup(tmp_path, lifetime)
    caplog.set_level(logging.INFO, "appliance.certs.acme.renewal")
    await run_for(scheduler, clock, T0 + 2 * lifetime)
    due = T0 + lifetime * 2 / 3
    assert renewal_time(issuer.current() or pytest.fail()) >= due  # the newest one is due later
    assert issuer.attempts, "never renewed"
    # The first renewal happens exactly when a third of the lifetime is left, well before the end.
    assert issuer.attempts[0] == due
    # ... and then every certificate is renewed in turn: nothing is ever served expired.
    for earlier, later in itertools.pairwise(issuer.attempts):
        assert later - earlier == lifetime * 2 / 3
    assert "Certificate for a.test: renewal due since 2026-03-01 12:20:00 UTC" in caplog.text


async def test_retries_of_a_short_lived_certificate_come_before_it_expires(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    lifetime = dt.timedelta(hours=2)
    scheduler, issuer, clock = setup(tmp_path, lifetime)
    issuer.failing = True
    caplog.set_level(logging.INFO, "appliance.certs.acme.renewal")
    sleeps = await run_for(scheduler, clock, T0 + lifetime)
    end = T0 + lifetime
    attempts = issuer.attempts
    assert attempts[0] == T0 + lifetime * 2 / 3
    # Backoff doubles, but never beyond a quarter of the time left: the last tries come close to the end.
    for earlier, later in itertools.pairwise(attempts):
        assert later - earlier <= max(dt.timedelta(minutes=1), (end - earlier) / 4)
    assert end - attempts[-1] <= dt.timedelta(minutes=2)
    # The timer wakes exactly at each "next attempt" the status (console, `cert status`) shows.
    status = issuer.state.load_status()
    assert status is not None and not status.ok and status.next_attempt is not None and status.by == "timer"
    assert max(sleeps) <= CHECK_INTERVAL
    assert "attempt 1 failed; next attempt at 2026-03-01 13:21:00 UTC" in caplog.text


async def test_the_timer_wakes_at_the_next_attempt_written_by_someone_else(tmp_path: Path) -> None:
    scheduler, issuer, _clock = setup(tmp_path, dt.timedelta(days=90))
    delay = await scheduler.tick()
    assert delay == CHECK_INTERVAL  # nothing due for 60 days; the hourly look is the safety net
    issuer.state.save_status(AcmeStatus(False, T0, ("a.test",), (), T0 + dt.timedelta(minutes=7), 3,
                                        by="parlour cert renew"))
    scheduler.load_status()
    assert await scheduler.tick() == 7 * 60


async def test_wake_interrupts_the_sleep(tmp_path: Path) -> None:
    scheduler, _issuer, _clock = setup(tmp_path, dt.timedelta(days=90))
    pause = asyncio.ensure_future(scheduler._pause(CHECK_INTERVAL))
    await asyncio.sleep(0)
    scheduler.wake()
    async with asyncio.timeout(2):
        await pause
