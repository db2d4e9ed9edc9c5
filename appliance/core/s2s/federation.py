"""Federation: the s2s connections of one server, outgoing per remote domain and incoming from the listener.

Outgoing, per remote domain: one connection, reused by every local host (dialback piggybacking) and
closed when idle; stanzas wait in one queue while it is being made; a failed attempt is retried with
exponential backoff, and stanzas still queued after `queue_timeout` go back to their senders as
remote-server-not-found (nothing reachable) or remote-server-timeout (reachable but it never got
through), RFC 6120 §8.3.3. The certificate is checked first (RFC 6125, by OpenSSL against the source
domain); when it does not validate and the policy allows dialback, the connection is made again
without the check and authenticated with Server Dialback.

A connection that breaks before the peer confirmed what was written (XEP-0198 `<a/>`): with stream
management its unconfirmed stanzas go back to the head of the queue and the next connection resumes the
session (`<resume/>`: the peer says how many it had, only the rest is sent again) or, when the peer
forgot it, sends them all again; without stream management the stanzas of the last seconds bounce to
their senders as remote-server-timeout (they may not have arrived), since nothing says what did.

Bidirectional streams (XEP-0288): an incoming stream on which the peer asked for bidi carries our
stanzas back to it, for the domain pairs it authorized there, whenever we have no outgoing connection of
our own to that domain (so none is opened); outgoing streams ask for it when offered, and take the peer's
stanzas on them likewise.

Incoming: the listener hands each accepted socket to `accept`; a `<db:result/>` is verified with the
authoritative server over our outgoing connection to it (`<db:verify/>`). For domains that need valid
certificates that connection must itself have validated the peer's certificate, so the identity is
PKIX-checked either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from lxml import etree

from appliance.config.model import S2SConfig
from appliance.core.federation_policy import FederationPolicy
from appliance.core.s2s.connection import IN_FLIGHT_WINDOW, ServerConnection
from appliance.xmpp import s2s, sm
from appliance.xmpp.errors import StanzaError, StreamError

log = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0
CLOSE_GRACE = 2.0  # seconds closing connections get to end before the federation stops waiting
RESUME_WINDOW = 300.0  # seconds we remember the count of a broken incoming managed stream, for <resume/>


NOT_FOUND = "remote-server-not-found"


class S2SNetwork(Protocol):
    """What federation needs of the network layer (net/s2s.py): sockets and TLS contexts."""

    async def connect(
        self, remote: str, local: str, *, verify: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool, str]:
        """Open a connection to `remote`'s server: (reader, writer, TLS already up, peer address)."""
        ...

    def client_context(self, local: str, *, verify: bool) -> ssl.SSLContext: ...

    def server_context(self) -> ssl.SSLContext | None: ...

    async def accept_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> TlsSession:
        """TLS on an incoming connection, asking for the peer's certificate without refusing any."""
        ...

    def verify_server(self, chain: list[x509.Certificate], domain: str) -> bool:
        """Whether a peer's certificate chain validates for `domain` (RFC 6125)."""
        ...

    def check_peer_name(self, ssl_object: ssl.SSLObject | None, remote: str) -> None:
        """Raise ssl.SSLCertVerificationError unless the server we reached showed a certificate naming `remote`."""
        ...


class TlsSession(Protocol):
    """An incoming TLS session (net/s2s_tls.py): a stream to read and write, what was negotiated."""

    version: str | None
    peer_chain: list[x509.Certificate]

    async def read(self, n: int = ...) -> bytes: ...

    def write(self, data: bytes) -> None: ...


class Unreachable(Exception):
    """No connection to the remote server could be made (DNS, TCP, TLS)."""


class NotFound(Unreachable):
    """DNS knows no address for the remote domain: its stanzas bounce at once, nothing to retry."""


@dataclass(slots=True)
class _Queued:
    element: etree._Element
    local: str
    deadline: float
    seq: int = 0  # sent before on a managed stream that broke: its number there (for resuming)


@dataclass(slots=True)
class _Remote:
    """Our outgoing side towards one remote domain."""

    domain: str
    connection: ServerConnection | None = None
    queue: deque[_Queued] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    failures: int = 0
    reached: bool = False  # a TCP connection was made at least once in the current attempt series
    last_used: float = field(default_factory=time.monotonic)
    opened: asyncio.Event = field(default_factory=asyncio.Event)  # a (new) connection object exists
    resume: tuple[str, int] | None = None  # a broken managed stream: its id and the last count confirmed
    bidi: ServerConnection | None = None  # an incoming bidirectional stream from the domain (XEP-0288)


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    require_tls: bool
    dialback: bool  # dialback accepted (the certificate need not validate)


class Federation:
    """Every s2s connection of one server."""

    def __init__(
        self,
        *,
        config: Callable[[], S2SConfig],
        hosts: Collection[str],
        network: S2SNetwork,
        deliver: Callable[[etree._Element], Awaitable[None]],
        bounce: Callable[[etree._Element, StanzaError], Awaitable[None]],
        secret: bytes,
        spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]],
        policy: FederationPolicy,
        stats: dict[str, int] | None = None,
    ) -> None:
        self._config = config
        self.domain_policy = policy  # [federation]: which remote domains we talk to at all
        self.hosts = hosts  # local domains (virtual hosts and their service domains), a live view
        self.network = network
        self.deliver = deliver
        self._bounce = bounce
        self.secret = secret
        self.spawn = spawn
        self.remotes: dict[str, _Remote] = {}
        self.incoming: set[ServerConnection] = set()
        self.incoming_per_ip: dict[str, int] = {}
        # True/False, a dialback error's condition, or None: the link was lost before the answer
        self._verifies: dict[tuple[str, str, str], asyncio.Future[bool | str | None]] = {}
        self.resumable: dict[str, tuple[str, int, float]] = {}  # incoming sm id -> (remote, handled, until)
        self.failures = 0
        # Totals since the server started (the core's stats, so a runtime switch does not reset them).
        self.stats: dict[str, int] = stats if stats is not None else {}

    def count(self, name: str) -> None:
        """Add one to the s2s counter `name` (connections_in/out, stanzas_in/out, bounces, dialback_failures)."""
        key = "s2s_" + name
        self.stats[key] = self.stats.get(key, 0) + 1

    def _return(self, element: etree._Element, error: StanzaError) -> None:
        """Bounce a stanza that will not reach the remote server to its sender (in a task of its own)."""
        self.count("bounces")
        self.spawn(self._bounce(element, error), "s2s-bounce")

    @property
    def config(self) -> S2SConfig:
        return self._config()

    def connections(self) -> Iterator[ServerConnection]:
        """Every live connection, outgoing first (for status pages and metrics)."""
        for remote in self.remotes.values():
            if remote.connection is not None and not remote.connection.closed:
                yield remote.connection
        yield from self.incoming

    def queued(self) -> int:
        return sum(len(r.queue) for r in self.remotes.values())

    def policy(self, remote: str) -> DomainPolicy:
        cfg = self.config
        insecure = remote in cfg.insecure_domains
        secure = remote in cfg.secure_domains or (cfg.require_valid_certificates and not insecure)
        return DomainPolicy(require_tls=cfg.require_encryption and not insecure, dialback=not secure)

    # -- outgoing -------------------------------------------------------------------------------------

    def send(self, element: etree._Element, local: str, remote: str) -> None:
        """Send a stanza from our domain `local` to `remote`: at once on a ready connection, else queued."""
        state = self.remotes.get(remote)
        if state is None:
            state = self.remotes[remote] = _Remote(remote)
        state.last_used = time.monotonic()
        connection = state.connection
        if connection is not None and not connection.closed and connection.machine.ready_for(local) \
                and not _resuming(connection):
            connection.send_stanza(element, local)
            return
        bidi = state.bidi
        if connection is None and bidi is not None and not bidi.closed and bidi.machine.may_send(local, remote):
            bidi.send_stanza(element, local)  # the peer's own stream carries it back: no connection of ours
            return
        if len(state.queue) >= self.config.max_queue:
            self._return(element, StanzaError.resource_constraint("Too many stanzas waiting for "
                                                                               f"{remote}"))
            return
        state.queue.append(_Queued(element, local, time.monotonic() + self.config.queue_timeout))
        if connection is not None and not connection.closed:
            if connection.machine.authorize(local):  # piggyback this host on the existing stream
                self.spawn(connection._carry_out(), f"s2s-authorize-{remote}")
        elif state.task is None or state.task.done():
            state.reached = False  # a new series of attempts: what happened to the last one is over
            state.task = self.spawn(self._keep_trying(state), f"s2s-connect-{remote}")

    async def _keep_trying(self, state: _Remote) -> None:
        """Connect (with backoff between attempts) while stanzas wait; bounce those past their deadline."""
        while state.queue:
            try:
                await self._open(state, state.queue[0].local)
                return
            except NotFound as exc:
                log.info("s2s %s: %s; returning %d stanza(s)", state.domain, exc, len(state.queue))
                self.failures += 1
                while state.queue:
                    item = state.queue.popleft()
                    self._return(item.element, StanzaError.remote_server_not_found())
                return
            except Unreachable as exc:
                if self._via_bidi(state):
                    log.info("s2s %s: %s; the peer's bidirectional stream carries the stanzas", state.domain, exc)
                    return
                state.failures += 1
                self.failures += 1
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (state.failures - 1))
                log.info("s2s %s: %s; next attempt in %.0f s", state.domain, exc, delay)
                await self._expire(state, until=time.monotonic() + delay)

    async def _expire(self, state: _Remote, *, until: float) -> None:
        """Wait until `until`, bouncing queued stanzas as their deadlines pass."""
        while state.queue and (now := time.monotonic()) < until:
            first = state.queue[0].deadline
            if first <= now:
                self._bounce_expired(state, now)
                continue
            await asyncio.sleep(min(until, first) - now)
        self._bounce_expired(state, time.monotonic())

    def _bounce_expired(self, state: _Remote, now: float) -> None:
        condition = StanzaError.remote_server_timeout if state.reached else StanzaError.remote_server_not_found
        while state.queue and state.queue[0].deadline <= now:
            item = state.queue.popleft()
            self._return(item.element, condition())

    async def _open(self, state: _Remote, local: str) -> ServerConnection:
        """Make the outgoing connection to `state.domain` and start its stream; raises Unreachable."""
        remote = state.domain
        policy = self.policy(remote)
        cfg = self.config
        verify = True
        for _ in range(2):
            try:
                async with asyncio.timeout(cfg.connect_timeout + cfg.tls_timeout):
                    reader, writer, secure, ip = await self.network.connect(remote, local, verify=verify)
            except ssl.SSLCertVerificationError as exc:
                if not policy.dialback or not verify:
                    raise Unreachable(f"certificate not valid: {exc.verify_message}") from None
                verify = False  # try again without the check, then authenticate with dialback
                continue
            except LookupError as exc:
                raise NotFound(str(exc)) from None
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                raise Unreachable(str(exc) or type(exc).__name__) from None
            state.reached = True
            connection = self._start_outgoing(state, local, reader, writer, secure=secure, verify=verify, ip=ip)
            if secure:
                connection.certificate_valid = verify
            # A STARTTLS handshake that fails the name check surfaces while the stream runs: retry then.
            await connection.ready.wait()
            if connection.closed and connection.tls_failed and verify and policy.dialback:
                verify = False
                continue
            if connection.closed and not connection.machine.pairs:
                raise Unreachable(connection.failure or "the stream closed before authentication")
            return connection
        raise Unreachable("no usable connection")

    def _start_outgoing(
        self, state: _Remote, local: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
        secure: bool, verify: bool, ip: str,
    ) -> ServerConnection:
        policy = self.policy(state.domain)
        machine = s2s.ServerStream(
            outgoing=True, hosts=self.hosts, secret=self.secret, local=local, remote=state.domain, secure=secure,
            # We may always prove our own name by dialback; whether the peer's certificate must validate
            # was settled by the TLS check in `_open` (no unverified retry for secure domains).
            policy=s2s.Policy(tls_available=True, require_tls=policy.require_tls, dialback=True,
                              stream_management=self.config.stream_management, bidi=self.config.bidi),
            resume=state.resume[0] if state.resume else None,
        )
        connection = ServerConnection(machine, reader, writer, federation=self, verify_certificate=verify, peer_ip=ip)
        self.count("connections_out")
        if state.resume is not None:
            connection.count_from(state.resume[1])
        for item in state.queue:
            if item.local != local:
                machine.authorize(item.local)
        state.connection = connection
        state.opened.set()
        self.spawn(connection.run(), f"s2s-out-{state.domain}")
        return connection

    async def link(self, remote: str, local: str) -> ServerConnection | None:
        """An outgoing connection to `remote` for `<db:verify/>`: the live one, else a new one (not yet
        authenticated: the machine holds the question until the stream is negotiated)."""
        state = self.remotes.get(remote)
        if state is None:
            state = self.remotes[remote] = _Remote(remote)
        connection = state.connection
        if connection is not None and not connection.closed:
            return connection
        if state.task is None or state.task.done():
            state.task = self.spawn(self._connect_once(state, local), f"s2s-connect-{remote}")
        state.opened.clear()
        opened = asyncio.ensure_future(state.opened.wait())
        await asyncio.wait({opened, state.task}, return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        connection = state.connection
        return connection if connection is not None and not connection.closed else None

    async def _connect_once(self, state: _Remote, local: str) -> None:
        try:
            await self._open(state, local)
        except Unreachable as exc:
            log.info("s2s %s: %s", state.domain, exc)
            state.opened.set()
        if state.queue:
            await self._keep_trying(state)

    # -- what connections report --------------------------------------------------------------------------

    def authorized(self, connection: ServerConnection, effect: s2s.Authorized) -> None:
        log.info("s2s %s %s authenticated (%s) for %s", "to" if connection.outgoing else "from",
                 effect.remote, effect.method, effect.local)
        if not connection.outgoing:
            per_domain = sum(1 for c in self.incoming if effect.remote in {r for r, _ in c.machine.pairs})
            if per_domain > self.config.max_connections_per_domain:
                log.warning("s2s: too many connections from %s; closing the newest", effect.remote)
                connection.machine.stream_error(StreamError.policy_violation("Too many connections"))
            elif connection.machine.bidi:
                state = self.remotes.get(effect.remote)
                if state is None:
                    state = self.remotes[effect.remote] = _Remote(effect.remote)
                if state.bidi is None or state.bidi.closed:
                    state.bidi = connection
                if state.connection is None:
                    # What waits goes back on the peer's stream only when we have no connection of our own
                    # (failed, or in backoff): one that is opening gets it, as `send` does, so the
                    # stanzas to a domain keep to one stream, in order, when both servers connect at once.
                    self._flush(state, state.bidi)
            return
        state = self.remotes.get(effect.remote)
        if state is None or state.connection is not connection:
            return
        state.failures = 0
        if effect.local == connection.machine.local:
            connection.ready.set()
        if not _resuming(connection):  # else the peer's count comes first: `managed`
            self._flush(state, connection)

    def _flush(self, state: _Remote, connection: ServerConnection) -> None:
        """Send what waits for `state.domain` from every local domain authorized on `connection`."""
        kept: deque[_Queued] = deque()
        for item in state.queue:
            if connection.machine.may_send(item.local, state.domain):
                connection.send_stanza(item.element, item.local)
            else:
                kept.append(item)
        state.queue = kept

    def managed(self, connection: ServerConnection, effect: s2s.SmStarted | s2s.SmFailed) -> None:
        """Stream management on an outgoing stream: started, resumed (the peer says how many of the broken
        stream's stanzas it had: those are done, the rest go again), or refused."""
        state = self.remotes.get(connection.machine.remote or "")
        if state is None or state.connection is not connection:
            return
        if isinstance(effect, s2s.SmStarted):
            connection.sm_id = effect.sm_id
            if effect.handled is not None and state.resume is not None:
                base = state.resume[1]
                handled = base + (effect.handled - base) % sm.MODULUS
                state.queue = deque(item for item in state.queue if not 0 < item.seq <= handled)
                connection.count_from(handled)
                log.info("s2s %s: stream resumed; %d stanza(s) to send again", state.domain,
                         sum(1 for item in state.queue if item.seq))
        else:
            connection.count_from(0)
            if effect.resuming:
                log.info("s2s %s: the peer could not resume the stream; sending its stanzas again", state.domain)
        state.resume = None
        for item in state.queue:
            item.seq = 0
        self._flush(state, connection)

    def refused(self, connection: ServerConnection, effect: s2s.Refused | s2s.TlsNeeded) -> None:
        connection.failure = str(effect)
        if isinstance(effect, s2s.Refused) and effect.reason.startswith("dialback"):
            self.count("dialback_failures")  # the peer did not believe our key
        if isinstance(effect, s2s.Refused):
            state = self.remotes.get(connection.machine.remote or "")
            if state is not None and (effect.local != connection.machine.local or effect.bounce != NOT_FOUND):
                # That host was refused (an invalid key, a dialback error): its stanzas go back at once with
                # the error XEP-0220 §2.1.3 gives; the stream stays for the other hosts on it.
                text = f"{state.domain} did not accept {effect.local}: {effect.reason}"
                for item in [i for i in state.queue if i.local == effect.local]:
                    state.queue.remove(item)
                    self._return(item.element, StanzaError(effect.bounce, text))
                if effect.local != connection.machine.local:
                    return
        connection.ready.set()

    def _unconfirmed(self, state: _Remote, connection: ServerConnection) -> None:
        """What a broken outgoing connection wrote without the peer confirming it: with stream management,
        back to the head of the queue (the next connection resumes or resends); without, bounced. After a
        closing handshake nothing is unconfirmed."""
        unacked = connection.unacked
        if not unacked:
            return
        if connection.machine.ended_cleanly:
            # Both `</stream:stream>`s were exchanged: the peer read (RFC 6120 §4.4) all we wrote before ours.
            unacked.clear()
            return
        if connection.machine.sm_requested:
            deadline = time.monotonic() + self.config.queue_timeout
            state.queue.extendleft(_Queued(s.element, s.local, deadline, s.seq) for s in reversed(unacked))
            state.resume = (connection.sm_id, connection.sm_acked) if connection.sm_id else None
            log.info("s2s %s: connection lost with %d unconfirmed stanza(s); they go again", state.domain,
                     len(unacked))
        elif connection.machine.phase is not s2s.Phase.CLOSED or connection.machine.peer_error:
            # Our own stream error or close came after all we wrote, which the peer read; a stream error
            # of the peer's says it stopped reading somewhere, maybe before these.
            now = time.monotonic()
            text = f"The connection to {state.domain} broke; this may not have arrived"
            for sent in unacked:
                if sent.at >= now - IN_FLIGHT_WINDOW:
                    self._return(sent.element, StanzaError.remote_server_timeout(text))
        unacked.clear()

    def resume_check(self, effect: s2s.ResumeCheck) -> int | None:
        """Incoming `<resume/>`: the count of the broken (or not yet noticed broken) stream it names."""
        now = time.monotonic()
        for connection in list(self.incoming):
            machine = connection.machine
            if machine.sm_id == effect.previd and machine.sm_handled is not None:
                if machine.remote != effect.remote:
                    return None
                machine.sm_id = None  # the new stream carries on; the old one must not be remembered
                connection.abort()
                return machine.sm_handled
        remote, handled, until = self.resumable.pop(effect.previd, ("", 0, 0.0))
        return handled if remote == effect.remote and until > now else None

    def lost(self, connection: ServerConnection) -> None:
        if not connection.outgoing:
            machine = connection.machine
            if machine.sm_id is not None and machine.sm_handled is not None and machine.remote:
                now = time.monotonic()
                self.resumable = {k: v for k, v in self.resumable.items() if v[2] > now}
                self.resumable[machine.sm_id] = (machine.remote, machine.sm_handled, now + RESUME_WINDOW)
            self.incoming.discard(connection)
            state = self.remotes.get(machine.remote or "")
            if state is not None and state.bidi is connection:
                state.bidi = None
                self._unconfirmed(state, connection)
                self._reconnect_if_waiting(state, at_once=connection.machine.ended_cleanly)
            self._left(connection.peer_ip)
            return
        state = self.remotes.get(connection.machine.remote or "")
        if state is None or state.connection is not connection:
            return
        state.connection = None
        self._unconfirmed(state, connection)
        for key, future in list(self._verifies.items()):
            if key[0] == state.domain and not future.done():
                future.set_result(None)
        self._reconnect_if_waiting(state, at_once=connection.machine.ended_cleanly)

    def _reconnect_if_waiting(self, state: _Remote, *, at_once: bool = False) -> None:
        if state.connection is None and self._via_bidi(state):
            return
        if state.queue and (state.task is None or state.task.done()) and state.connection is None:
            # Stanzas are waiting (the link dropped mid-queue, or came while it was closing): connect
            # again (at once after a polite close, else after a backoff); they are sent once.
            retry = self._keep_trying(state) if at_once else self._retry_later(state)
            state.task = self.spawn(retry, f"s2s-connect-{state.domain}")

    def _via_bidi(self, state: _Remote) -> bool:
        """Send what waits on the peer's bidirectional stream, when there is one (our own connection
        closed as idle or failed, theirs carries on); whether it took everything. Stanzas of a broken
        managed stream wait for a connection of ours, which can resume it (no duplicates)."""
        bidi = state.bidi
        if not state.queue or bidi is None or bidi.closed or any(item.seq for item in state.queue):
            return False
        self._flush(state, bidi)
        return not state.queue

    def _left(self, ip: str) -> None:
        """An incoming connection from `ip` ended (for the per-address limit)."""
        left = self.incoming_per_ip.get(ip, 1) - 1
        if left > 0:
            self.incoming_per_ip[ip] = left
        else:
            self.incoming_per_ip.pop(ip, None)

    async def _retry_later(self, state: _Remote) -> None:
        state.failures += 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (state.failures - 1))
        await self._expire(state, until=time.monotonic() + delay)
        await self._keep_trying(state)

    # -- dialback ---------------------------------------------------------------------------------------

    async def verify_dialback(self, effect: s2s.VerifyDialback) -> bool | str:
        """Is `effect.key` really from `effect.remote`? Ask its authoritative server (XEP-0220 §2.3).
        True or False for its answer, else the condition of the dialback error to send (§2.4)."""
        try:
            valid = await self._ask_authoritative(effect)
        except Exception:
            log.exception("s2s %s: verifying a dialback key failed", effect.remote)
            valid = "internal-server-error"
        if valid is not True:
            self.count("dialback_failures")
            if isinstance(valid, str):
                log.info("s2s %s: dialback for %s not verified: %s", effect.remote, effect.local, valid)
        return valid

    async def _ask_authoritative(self, effect: s2s.VerifyDialback) -> bool | str:
        policy = self.policy(effect.remote)
        key = (effect.remote, effect.local, effect.stream_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.auth_timeout
        try:
            # A connection may end before it answers (its certificate check failed, so it is made again
            # without): ask again on the next one while time is left.
            while loop.time() < deadline:
                connection = await self.link(effect.remote, effect.local)
                if connection is None:
                    return "remote-connection-failed"
                future: asyncio.Future[bool | str | None] = loop.create_future()
                self._verifies[key] = future
                connection.machine.verify(local=effect.local, remote=effect.remote, stream_id=effect.stream_id,
                                          key=effect.key)
                await connection._carry_out()
                try:
                    async with asyncio.timeout(max(0.0, deadline - loop.time())):
                        answer = await future
                except TimeoutError:
                    return "remote-server-timeout"
                if answer is None:
                    continue
                if answer is True and not policy.dialback and not connection.certificate_valid:
                    log.warning("s2s %s: dialback refused, its certificate must validate", effect.remote)
                    return "not-authorized"
                return answer
            return "remote-server-timeout"
        finally:
            self._verifies.pop(key, None)

    def verify_answer(self, effect: s2s.VerifyAnswer) -> None:
        future = self._verifies.get((effect.remote, effect.local, effect.stream_id))
        if future is not None and not future.done():
            # The authoritative server answered with an error: XEP-0220 §2.4 passes remote-server-not-found on.
            future.set_result("remote-server-not-found" if effect.error else effect.valid)

    # -- incoming ---------------------------------------------------------------------------------------

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                     direct_tls: bool = False) -> None:
        """Serve one accepted connection from another server (the listeners' callback); on the direct
        TLS listener (XEP-0368) the handshake is done already and the stream starts secure."""
        peer = writer.get_extra_info("peername")
        ip = peer[0] if peer else "?"
        cfg = self.config
        if self.incoming_per_ip.get(ip, 0) >= cfg.max_connections_per_ip:
            log.warning("s2s: refusing a connection from %s: connection limit reached", ip)
            writer.close()
            return
        self.incoming_per_ip[ip] = self.incoming_per_ip.get(ip, 0) + 1
        tls: TlsSession | None = None
        if direct_tls:
            try:
                tls = await self.network.accept_tls(reader, writer)
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                log.info("s2s: direct TLS from %s failed: %s", ip, exc)
                self._left(ip)
                writer.close()
                return
        machine = s2s.ServerStream(
            outgoing=False, hosts=self.hosts, secret=self.secret, secure=tls is not None,
            policy=s2s.Policy(tls_available=self.network.server_context() is not None,
                              require_tls=cfg.require_encryption, dialback=True,
                              external=bool(tls and tls.peer_chain),
                              stream_management=cfg.stream_management, bidi=cfg.bidi),
        )
        connection = ServerConnection(machine, reader, writer, federation=self, peer_ip=ip)
        if tls is not None:
            connection.secured(tls)
            connection.direct_tls = True
        self.count("connections_in")
        self.incoming.add(connection)
        await connection.run()

    # -- lifecycle --------------------------------------------------------------------------------------

    def sweep(self) -> None:
        """Close outgoing connections idle for longer than `idle_timeout`: nothing sent on them, and (a
        bidirectional stream carries the peer's stanzas too) nothing received."""
        limit = time.monotonic() - self.config.idle_timeout
        for state in self.remotes.values():
            connection = state.connection
            if connection is not None and not connection.closed and not state.queue and state.last_used < limit \
                    and connection.last_active < limit:
                log.info("s2s %s: idle, closing", state.domain)
                connection.close()

    async def close(self) -> None:
        """Close every connection politely (shutdown, federation switched off): our `</stream:stream>`
        on each, then wait a moment for them to end; what still waits for a remote bounces."""
        for state in self.remotes.values():
            if state.task is not None:
                state.task.cancel()
            for item in state.queue:
                self.count("bounces")
                with contextlib.suppress(Exception):
                    await self._bounce(item.element, StanzaError.remote_server_timeout())
            state.queue.clear()
        connections = list(self.connections())
        for connection in connections:
            connection.close()
        if connections:
            waiters = [asyncio.ensure_future(c.finished.wait()) for c in connections]
            _, late = await asyncio.wait(waiters, timeout=CLOSE_GRACE)
            for waiter in late:
                waiter.cancel()


def _resuming(connection: ServerConnection) -> bool:
    """Whether `connection` waits for the peer's answer to `<resume/>` (stanzas wait until then)."""
    return connection.machine.resume is not None and connection.machine.sm_requested
