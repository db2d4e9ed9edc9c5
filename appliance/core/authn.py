"""One SASL authentication attempt, the same for RFC 6120 SASL and XEP-0388 SASL2.

The profiles differ only in how challenges, success and failure are written and in what happens
after success; both drive a `SaslExchange`: `start(initial_response)` then `step(response)` until
neither returns a challenge, or a `SaslFailure` ends it. FAST tokens (XEP-0484) are kept here too,
in the key-value store, per account and client (SASL2 user-agent id).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from appliance.core.accounts import DirectoryUnavailable
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.sasl import SaslFailure, ht, plain, scram
from appliance.xmpp.sasl.fast import FastToken, TokenSlots

if TYPE_CHECKING:
    from lxml import etree

    from appliance.core.c2s import ClientSession
    from appliance.storage.api import KeyValueStore

FAST_STORE = "fast"


class FastTokens:
    """FAST tokens in the key-value store (store "fast", key = the client's user-agent id)."""

    __slots__ = ("kv",)

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv

    async def load(self, jid: JID, agent: str) -> TokenSlots:
        return TokenSlots.from_bytes(await self.kv.get(jid.domain, jid.local or "", FAST_STORE, agent))

    async def save(self, jid: JID, agent: str, slots: TokenSlots) -> None:
        await self.kv.put(jid.domain, jid.local or "", FAST_STORE, agent, slots.to_bytes())

    async def invalidate(self, jid: JID, agent: str) -> None:
        await self.kv.delete(jid.domain, jid.local or "", FAST_STORE, agent)

    async def issue(self, jid: JID, agent: str, mechanism: str, lifetime: float) -> FastToken:
        slots, token = (await self.load(jid, agent)).issue(mechanism, time.time(), lifetime)
        await self.save(jid, agent, slots)
        return token


class SaslExchange:
    """The mechanism side of one authentication attempt on one session."""

    __slots__ = ("_scram", "additional", "jid", "mechanism", "offered", "request", "session", "token_used")

    def __init__(
        self, session: ClientSession, mechanism: str, offered: list[str], *, request: etree._Element | None
    ) -> None:
        self.session = session
        self.mechanism = mechanism
        self.offered = offered  # the mechanism list the client saw (XEP-0474 signs it)
        self.request = request  # SASL2 <authenticate/>; None for RFC 6120 SASL
        self.jid: JID | None = None  # the account, once the client named it
        self.additional = b""  # success data (SCRAM server-final, HT responder proof)
        self.token_used: FastToken | None = None
        self._scram: scram.ScramServer | None = None

    @property
    def sasl2(self) -> bool:
        return self.request is not None

    async def start(self, data: bytes) -> bytes | None:
        """Handle the initial response; return a challenge, or None once authenticated."""
        if self.mechanism == "PLAIN":
            await self._plain(data)
            return None
        if self.mechanism.startswith("HT-"):
            await self._hashed_token(data)
            return None
        return await self._scram_first(data)

    async def step(self, data: bytes) -> bytes | None:
        server, self._scram = self._scram, None
        if server is None:
            raise SaslFailure("malformed-request", "No challenge is outstanding")
        assert self.jid is not None
        self.additional = server.final(data)
        self._check_authzid(server.authzid or "")
        return None

    # -- mechanisms ---------------------------------------------------------------------------

    async def _plain(self, data: bytes) -> None:
        if not data:
            raise SaslFailure("malformed-request")  # PLAIN needs an initial response
        authzid, authcid, password = plain.parse(data)
        self.jid = self.session.account_jid(authcid)
        self._check_authzid(authzid)
        await self._wait_turn()
        try:
            verified = await self.session.services.accounts.verify_plain(self.jid, password)
        except DirectoryUnavailable:
            raise SaslFailure("temporary-auth-failure", "The directory cannot check passwords now") from None
        if not verified:
            raise SaslFailure("not-authorized")

    async def _scram_first(self, data: bytes) -> bytes:
        hash_name, plus = scram.parse_mechanism(self.mechanism)
        session = self.session
        bindings = session.transport.channel_bindings if session.transport.secure else {}
        server = scram.ScramServer(
            hash_name,
            plus=plus,
            channel_bindings=bindings,
            fake_secret=session.services.fake_secret,
            fake_iterations=session.services.config.limits.scram_iterations,
            downgrade_protection=(self.offered, session.advertised_bindings()),
        )
        self.jid = session.account_jid(server.first(data))
        await self._wait_turn()
        keys = await session.services.accounts.scram_keys(self.jid, hash_name)
        self._scram = server
        return server.challenge(keys)

    async def _hashed_token(self, data: bytes) -> None:
        session = self.session
        tokens = session.services.fast
        agent = session.user_agent
        if not self.sasl2 or tokens is None or agent is None:
            raise SaslFailure("not-authorized", "FAST needs SASL2 with a user-agent id")
        authcid, proof = ht.parse_initial(data)
        self.jid = session.account_jid(authcid)
        await self._wait_turn(token=True)
        bindings = session.transport.channel_bindings if session.transport.secure else {}
        now = time.time()
        slots = await tokens.load(self.jid, agent)
        found = slots.use(self.mechanism, lambda token: ht.verify(self.mechanism, token, proof, bindings), now)
        if found is None:
            stale = (slots.current is not None or slots.new is not None) and slots.expired(now)
            raise SaslFailure("credentials-expired" if stale else "not-authorized")
        updated, self.token_used = found
        if updated != slots:
            await tokens.save(self.jid, agent, updated)
        self.additional = ht.responder_proof(self.mechanism, self.token_used.token.encode(), bindings)

    async def _wait_turn(self, *, token: bool = False) -> None:
        """Hold a throttled attempt back before its credentials are checked (core.auth_throttle)."""
        session = self.session
        assert self.jid is not None
        delay = session.services.auth_throttle.wait(
            session.transport.peer_ip, str(self.jid), time.monotonic(), token=token
        )
        if delay > 0:
            session.services.stats["auth_delayed"] = session.services.stats.get("auth_delayed", 0) + 1
            await asyncio.sleep(delay)

    def _check_authzid(self, authzid: str) -> None:
        if not authzid:
            return
        try:
            wanted = JID.parse(authzid)
        except JIDError:
            raise SaslFailure("invalid-authzid") from None
        if wanted.bare() != self.jid:
            raise SaslFailure("invalid-authzid")
