"""Getting the ACME certificate: pre-flight, one order for every name that can pass, install it.

The composition of preflight, client and store, shared by the server's renewal task and
``parlour cert renew``. The certificate files live in ``<state_dir>/acme/``; installing them into the
``CertificateStore`` makes new connections use them at once while established ones carry on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence

from appliance.certs.acme.challenges import ChallengeResponder
from appliance.certs.acme.client import AcmeClient, AcmeFailure
from appliance.certs.acme.preflight import Preflight, Resolver, resolver_for
from appliance.certs.acme.problems import CertProblem
from appliance.certs.acme.state import AcmeState
from appliance.certs.names import hosted_names
from appliance.certs.store import CertificateInfo, CertificateStore
from appliance.config.model import Config

__all__ = ["AcmeManager"]

log = logging.getLogger(__name__)


class AcmeManager:
    """Obtains and installs the certificate for every hosted name of ``config``."""

    def __init__(
        self, config: Config, store: CertificateStore, responder: ChallengeResponder, *,
        tls_ports: Sequence[int] = (), resolve: Resolver | None = None,
    ) -> None:
        acme = config.acme
        self.config = config
        self.store = store
        self.responder = responder
        self.state = AcmeState(config.server.state_dir)
        self.names = tuple(hosted_names(config))
        port = acme.http_port if acme.challenge == "http-01" else acme.tls_port
        self.port = port
        self.preflight = Preflight(responder, resolve or resolver_for(acme.nameservers), acme.challenge, port,
                                   tuple(tls_ports))
        self.client = AcmeClient(acme.directory, self.state, ca_bundle=acme.ca_bundle)
        self.last_problems: tuple[CertProblem, ...] = ()

    def current(self) -> CertificateInfo | None:
        """The ACME certificate the store serves now."""
        return next((i for i in self.store.info() if i.chain == self.state.chain), None)

    async def obtain(self, *, force: bool = False) -> CertificateInfo | None:
        """Check every name, then order those that pass; return the new certificate.

        Returns None (nothing ordered) when the current certificate already covers every name that
        can pass and ``force`` is false. Raises ``AcmeFailure`` when no certificate could be had or
        some names had to be left out; ``last_problems`` keeps the warnings of a successful run.
        """
        problems = await self.preflight.check(self.names)
        failing = {p.name for p in problems if p.severity == "error"}
        if any(p.severity == "error" and p.name is None for p in problems):
            raise AcmeFailure(problems)
        names = [n for n in self.names if n not in failing]
        if not names:
            raise AcmeFailure(problems)
        current = self.current()
        if current is not None and not force and set(names) <= set(current.names) and failing:
            raise AcmeFailure(problems)  # nothing new could be had: do not spend the CA's rate limit
        acme = self.config.acme
        await asyncio.to_thread(self.client.register, email=acme.email, agree_tos=acme.agree_tos)
        try:
            chain, key = await self._issue(names)
        except AcmeFailure as exc:
            # One name the authority could not verify fails the whole order: order the others alone.
            refused = {p.name for p in exc.problems if p.name is not None and p.severity == "error"}
            rest = [n for n in names if n not in refused]
            if not refused or not rest:
                raise
            log.warning("Certificate: the authority could not verify %s; ordering %s without it",
                        ", ".join(sorted(refused)), ", ".join(rest))
            problems, failing, names = [*problems, *exc.problems], failing | refused, rest
            chain, key = await self._issue(names)
        left_out = [n for n in self.names if n not in names]
        problems += self._keep_previous(current, left_out)
        self.state.write_certificate(chain, key)
        info = self.store.add(self.state.chain, self.state.key)
        self.last_problems = tuple(problems)
        if failing:
            raise AcmeFailure(problems)  # installed, but without some names
        return info

    async def _issue(self, names: Sequence[str]) -> tuple[bytes, bytes]:
        acme = self.config.acme
        try:
            return await asyncio.to_thread(self.client.issue, names, self.responder, acme.challenge, port=self.port)
        except AcmeFailure as exc:
            if not exc.account_gone:
                raise
        # The authority forgot the account (reset, deactivated): register again, once, and order again.
        self.client.forget_account()
        await asyncio.to_thread(self.client.register, email=acme.email, agree_tos=acme.agree_tos)
        return await asyncio.to_thread(self.client.issue, names, self.responder, acme.challenge, port=self.port)

    def _keep_previous(self, current: CertificateInfo | None, left_out: Sequence[str]) -> list[CertProblem]:
        """Before the new certificate replaces ``current``: keep the certificate that still covers names
        the new one leaves out (served for those names through SNI), or drop it when none are left out.

        Returns a warning per name still covered that way.
        """
        state, now = self.state, dt.datetime.now(dt.UTC)
        previous = next((i for i in self.store.info() if i.chain == state.previous_chain), None)
        for candidate in (current, previous):
            if candidate is None or candidate.not_after <= now or not set(left_out) & set(candidate.names):
                continue
            if candidate is current:
                state.keep_previous()
            info = self.store.add(state.previous_chain, state.previous_key)
            kept = [n for n in left_out if n in info.names]
            for name in kept:
                log.warning("Certificate: %s is left out of the new certificate; the previous one keeps serving "
                            "it until %s UTC", name, f"{info.not_after:%Y-%m-%d %H:%M}")
            return [CertProblem.kept_previous(name, info.not_after) for name in kept]
        self.store.remove(state.previous_chain)
        state.drop_previous()
        return []
