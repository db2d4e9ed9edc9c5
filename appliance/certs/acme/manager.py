"""Getting the ACME certificate: pre-flight, one order for every name that can pass, install it.

The composition of preflight, client and store, shared by the server's renewal task and
``parlour cert renew``. The certificate files live in ``<state_dir>/acme/``; installing them into the
``CertificateStore`` makes new connections use them at once while established ones carry on.
"""

from __future__ import annotations

import asyncio
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
        chain, key = await asyncio.to_thread(
            self.client.issue, names, self.responder, acme.challenge, port=self.port
        )
        self.state.write_certificate(chain, key)
        info = self.store.add(self.state.chain, self.state.key)
        self.last_problems = tuple(problems)
        if failing:
            raise AcmeFailure(problems)  # installed, but without some names
        return info
