"""The ACME conversation (RFC 8555) with the `acme` library: account, one order for all names, challenges.

Blocking (``requests`` underneath): the server calls it through ``asyncio.to_thread``. Every failure
leaves as ``AcmeFailure`` carrying plain-language ``CertProblem``s and, when the authority sent one,
its Retry-After delay, so the renewal schedule can respect rate limits.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import josepy as jose
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from appliance import __version__
from appliance.certs.acme.challenges import TLSALPN01, ChallengeResponder
from appliance.certs.acme.problems import CertProblem
from appliance.certs.acme.state import AcmeState
from appliance.certs.selfsigned import write_atomic

__all__ = ["AcmeClient", "AcmeFailure"]

log = logging.getLogger(__name__)

ORDER_TIMEOUT = dt.timedelta(seconds=120)
_RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited"
_ACCOUNT_GONE = "urn:ietf:params:acme:error:accountDoesNotExist"
_PEM_PRIVATE = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class AcmeFailure(Exception):
    """An attempt failed for the reasons in ``problems``; ``retry_after`` seconds if the CA said so."""

    def __init__(self, problems: Sequence[CertProblem], retry_after: float | None = None, *,
                 account_gone: bool = False) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = tuple(problems)
        self.retry_after = retry_after
        self.rate_limited = any("rate limit" in p.message for p in problems)
        self.account_gone = account_gone  # the authority no longer knows our account (accountDoesNotExist)


class _Network(client.ClientNetwork):
    """ClientNetwork that remembers the last Retry-After header (acme drops it from its errors)."""

    retry_after: float | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        response = super()._send_request(method, url, *args, **kwargs)
        self.retry_after = _retry_after(response.headers.get("Retry-After"))
        return response


class AcmeClient:
    """Talks to one ACME directory with the account kept in ``state``."""

    def __init__(self, directory: str, state: AcmeState, *, ca_bundle: Path | None = None) -> None:
        self.directory_url = directory
        self.state = state
        self._verify: bool | str = str(ca_bundle) if ca_bundle else True
        self._net: _Network | None = None
        self._client: client.ClientV2 | None = None
        self._key: jose.JWKRSA | None = None

    # -- account ----------------------------------------------------------------------------------

    def register(self, *, email: str, agree_tos: bool) -> None:
        """Load the stored account, or accept the terms and create one."""
        acme = self._connect()
        assert self._net is not None
        stored = self.state.read_json(self.state.account)
        if stored and stored.get("directory") == self.directory_url and "regr" in stored:
            self._net.account = messages.RegistrationResource.json_loads(stored["regr"])
            return
        if not agree_tos:
            raise AcmeFailure([CertProblem.terms_not_agreed(acme.directory.meta.terms_of_service)])
        registration = messages.NewRegistration.from_data(email=email or None, terms_of_service_agreed=True)
        regr = self._call(acme.new_account, registration)
        self.state.write_json(self.state.account, {"directory": self.directory_url, "regr": regr.json_dumps()})
        log.info("Registered ACME account %s at %s", regr.uri, self.directory_url)

    def forget_account(self) -> None:
        """Drop the stored registration (the authority forgot it); the next ``register`` makes a new one."""
        self.state.account.unlink(missing_ok=True)
        if self._net is not None:
            self._net.account = None
        log.warning("The certificate authority at %s no longer knows Parlour's account; registering again",
                    self.directory_url)

    # -- issuance ---------------------------------------------------------------------------------

    def issue(self, names: Sequence[str], responder: ChallengeResponder, challenge: str, *, port: int
              ) -> tuple[bytes, bytes]:
        """One order for all ``names``; returns (full chain PEM, private key PEM)."""
        acme = self._connect()
        assert self._key is not None
        cert_key = ec.generate_private_key(ec.SECP256R1())
        key_pem = cert_key.private_bytes(*_PEM_PRIVATE)
        csr = crypto_util.make_csr(key_pem, list(names))
        try:
            order = self._call(acme.new_order, csr)
        except AcmeFailure as exc:
            refused = _refused_names(exc.__cause__, names)
            if not refused:
                raise
            # Named, so that the other names can be ordered without them (AcmeManager.obtain).
            raise AcmeFailure([CertProblem.authority_error(str(exc.__cause__.detail), exc.__cause__.typ, name)
                               for name in refused], exc.retry_after) from exc.__cause__
        self.state.write_json(self.state.order, {"url": order.uri, "names": list(names),
                                                 "directory": self.directory_url})
        published: list[tuple[str, str]] = []
        try:
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue
                name = authz.body.identifier.value
                challb = next((c for c in authz.body.challenges if c.chall.typ == challenge), None)
                if challb is None:
                    raise AcmeFailure([CertProblem.authority_error(
                        f"it does not offer the {challenge} challenge for {name}")])
                self._publish(responder, challb, name, published)
                self._call(acme.answer_challenge, challb, challb.chall.response(self._key))
            deadline = dt.datetime.now() + ORDER_TIMEOUT
            try:
                order = self._call(acme.poll_and_finalize, order, deadline)
            except errors.ValidationError as exc:
                raise AcmeFailure(_validation_problems(exc, challenge, port)) from exc
        finally:
            for kind, value in published:
                if kind == "http":
                    responder.withdraw_http(value)
                else:
                    responder.withdraw_tls_alpn(value)
        log.info("Certificate issued by %s for %s", self.directory_url, ", ".join(names))
        return order.fullchain_pem.encode(), key_pem

    def _publish(self, responder: ChallengeResponder, challb: messages.ChallengeBody, name: str,
                 published: list[tuple[str, str]]) -> None:
        assert self._key is not None
        chall = challb.chall
        if isinstance(chall, challenges.HTTP01):
            token = chall.encode("token")
            responder.publish_http(token, chall.validation(self._key))
            published.append(("http", token))
        elif isinstance(chall, TLSALPN01):
            responder.publish_tls_alpn(name, chall.key_authorization(self._key))
            published.append(("tls", name))

    # -- plumbing ---------------------------------------------------------------------------------

    def _connect(self) -> client.ClientV2:
        if self._client is not None:
            return self._client
        self._key = self._account_key()
        self._net = _Network(self._key, user_agent=f"parlour/{__version__}", verify_ssl=self._verify)  # type: ignore[arg-type]
        try:
            directory = client.ClientV2.get_directory(self.directory_url, self._net)
        except (requests.RequestException, ValueError, messages.Error) as exc:
            raise AcmeFailure([CertProblem.unreachable_authority(self.directory_url, _short(exc))]) from exc
        self._client = client.ClientV2(directory, net=self._net)
        return self._client

    def _account_key(self) -> jose.JWKRSA:
        try:
            key = serialization.load_pem_private_key(self.state.account_key.read_bytes(), password=None)
        except FileNotFoundError:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.state.ensure_dir()
            write_atomic(self.state.account_key, key.private_bytes(*_PEM_PRIVATE), 0o600)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise AcmeFailure([CertProblem.authority_error(f"{self.state.account_key} is not an RSA key")])
        return jose.JWKRSA(key=key)

    def _call(self, method: Any, *args: Any) -> Any:
        """Call the library, turning its exceptions into ``AcmeFailure``."""
        assert self._net is not None
        try:
            return method(*args)
        except messages.Error as exc:
            retry = self._net.retry_after
            if exc.typ == _RATE_LIMITED:
                when = f"in {retry / 3600:.1f} hours" if retry else "later"
                raise AcmeFailure([CertProblem.rate_limited(exc.detail or str(exc), when)], retry) from exc
            raise AcmeFailure([CertProblem.authority_error(exc.detail or str(exc), exc.typ or "")], retry,
                              account_gone=exc.typ == _ACCOUNT_GONE) from exc
        except errors.TimeoutError as exc:
            raise AcmeFailure([CertProblem.authority_error("the order was not ready in time")]) from exc
        except requests.RequestException as exc:
            raise AcmeFailure([CertProblem.unreachable_authority(self.directory_url, _short(exc))]) from exc


def _refused_names(error: BaseException | None, names: Sequence[str]) -> list[str]:
    """The names an order was refused for by policy (rejectedIdentifier, caa, unsupportedIdentifier):
    from the problem's subproblems (RFC 8555 §6.7.1) or, when the authority sends none, the quoted names."""
    if not isinstance(error, messages.Error) or (error.typ or "").rpartition(":")[2] not in _PER_NAME:
        return []
    found = [sub.identifier.value for sub in getattr(error, "subproblems", None) or ()
             if getattr(sub, "identifier", None) is not None]
    return [n for n in names if n in found or f'"{n}"' in (error.detail or "")]


_PER_NAME = {"rejectedIdentifier", "caa", "unsupportedIdentifier"}


def _validation_problems(exc: errors.ValidationError, challenge: str, port: int) -> list[CertProblem]:
    problems: list[CertProblem] = []
    for authzr in exc.failed_authzrs:
        name = authzr.body.identifier.value
        failed = [c for c in authzr.body.challenges if c.error is not None]
        error = failed[0].error if failed else None
        kind = (error.typ or "") if error else ""
        detail = (error.detail or str(error)) if error else "the challenge was not accepted"
        problems.append(CertProblem.challenge_failed(name, kind, detail, port))
    return problems or [CertProblem.authority_error("a challenge failed")]


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _short(exc: BaseException) -> str:
    """A short plain reason for a network failure (not the HTTP library's nested repr)."""
    reason: BaseException = exc
    while reason.__cause__ is not None or reason.__context__ is not None:
        reason = reason.__cause__ or reason.__context__  # type: ignore[assignment]
    text = str(reason).strip() or type(reason).__name__
    for marker, plain in _PLAIN_REASONS:
        if marker in text or marker in str(exc):
            return plain
    if "Max retries exceeded" in text or "HTTPSConnectionPool" in text:
        return "the connection failed"
    return text if len(text) < 200 else text[:197] + "..."


_PLAIN_REASONS = (
    ("Connection refused", "the connection was refused"),
    ("Name or service not known", "its name does not resolve"),
    ("Temporary failure in name resolution", "its name does not resolve (no DNS answer)"),
    ("timed out", "the connection timed out"),
    ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted (set acme.ca_bundle for a private CA)"),
    ("Network is unreachable", "the network is unreachable"),
)
