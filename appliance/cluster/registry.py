"""The session registry: which node holds which full JID, kept in Redis and mirrored on every node.

Each node writes its own sessions into its hash (`parlour:sessions:<node>`) and announces each change on
one stream (`parlour:events`) that every node reads in order. Every node keeps the others' sessions in its
own session directory as `RemoteSession`s, so the modules' delivery rules (priorities, available
resources, carbons) see the whole cluster without a round trip to Redis per stanza; ejabberd's session
table is replicated to every node the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from lxml import etree
from redis.asyncio import Redis
from redis.exceptions import RedisError

from appliance.cluster import keys
from appliance.cluster.queues import RETRY, Outbox
from appliance.cluster.remote import RemoteSession, SessionRecord
from appliance.core.sessions import Session, SessionDirectory
from appliance.xmpp.jid import JID, JIDError

log = logging.getLogger(__name__)

SET, DEL, DOWN = b"set", b"del", b"down"

Carbons = Callable[[Session], bool]
"""Whether a session of this node has carbons on (the composition root asks the carbons module)."""
SetCarbons = Callable[[Session, bool], None]
"""Switch carbons on or off for a remote session in this node's carbons module."""
Notify = Callable[[Session], tuple[str, ...]]
"""The PEP nodes a session of this node wants notifications of (learnt here from its entity capabilities)."""
SetNotify = Callable[[Session, tuple[str, ...]], None]
"""Tell this node's entity capabilities what a remote session wants (no nodes: forget it)."""


def _none(_session: Session) -> tuple[str, ...]:
    return ()


def _ignore(_session: Session, _nodes: tuple[str, ...]) -> None:
    return None


def _record(session: Session, carbons: bool, notify: tuple[str, ...]) -> SessionRecord:
    presence = session.presence
    return SessionRecord(session.available, session.priority,
                         etree.tostring(presence) if presence is not None else b"", session.interested, carbons,
                         notify)


class Registry:
    """This node's side of the registry: publishes its sessions (`SessionLink`) and mirrors the others'."""

    def __init__(self, redis: Redis, node: str, *, sessions: SessionDirectory, outbox: Outbox,
                 carbons: Carbons, set_carbons: SetCarbons, notify: Notify = _none,
                 set_notify: SetNotify = _ignore) -> None:
        self.redis = redis
        self.node = node
        self.sessions = sessions
        self.outbox = outbox
        self.carbons = carbons
        self.set_carbons = set_carbons
        self.notify = notify
        self.set_notify = set_notify
        self.local: dict[Session, tuple[object, ...]] = {}  # this node's sessions -> what was published
        self.remote: dict[str, RemoteSession] = {}  # full JID -> the other node's session
        self.node_gone: list[Callable[[str], None]] = []  # told when a node stopped or died (its inbox closed)
        self._writes: asyncio.Queue[tuple[bytes, bytes, bytes]] = asyncio.Queue()
        self.last_event = b"0-0"
        self.resync_needed = True
        self.running = True  # the loops end at their next turn once False: redis-py may swallow a cancel

    # -- SessionLink: this node's sessions -----------------------------------------------------------

    def _fingerprint(self, session: Session) -> tuple[object, ...]:
        return (session.available, session.priority, id(session.presence), session.interested,
                self.carbons(session), self.notify(session))

    def bound(self, session: Session) -> None:
        self.local[session] = self._fingerprint(session)
        moved = self.remote.pop(str(session.jid), None)  # it was on another node a moment ago: here now
        if moved is not None:
            self.set_notify(moved, ())
        self._publish(SET, session)

    def ended(self, session: Session) -> None:
        if self.local.pop(session, None) is not None:
            self._writes.put_nowait((DEL, str(session.jid).encode(), b""))

    def after_stanza(self, session: Session) -> Awaitable[None] | None:
        known = self.local.get(session)
        if known is not None:
            now = self._fingerprint(session)
            if now != known:
                self.local[session] = now
                self._publish(SET, session)
        return self.outbox.settle() if self.outbox.busy else None

    def _publish(self, op: bytes, session: Session) -> None:
        record = _record(session, self.carbons(session), self.notify(session))
        self._writes.put_nowait((op, str(session.jid).encode(), record.encode()))

    async def write_forever(self) -> None:
        """Write registry changes in order, in batches; while Redis is away they wait (and the heartbeat
        re-registers every session when it finds the registry lost)."""
        while self.running:
            batch = [await self._writes.get()]
            while not self._writes.empty() and len(batch) < 500:
                batch.append(self._writes.get_nowait())
            while self.running:
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for op, jid, record in batch:
                            if op == SET:
                                pipe.hset(keys.sessions(self.node), jid, record)
                            else:
                                pipe.hdel(keys.sessions(self.node), jid)
                            pipe.xadd(keys.EVENTS, {b"n": self.node.encode(), b"o": op, b"j": jid, b"r": record},
                                      maxlen=keys.EVENTS_KEPT, approximate=True)
                        await pipe.execute()
                    break
                except (RedisError, OSError) as exc:
                    log.warning("cluster: registering sessions failed (%s); retrying", exc)
                    await asyncio.sleep(RETRY)

    async def register_all(self) -> None:
        """Write every session of this node again (after Redis lost them, or at start)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.sessions(self.node))
            for session in self.local:
                record = _record(session, self.carbons(session), self.notify(session)).encode()
                jid = str(session.jid).encode()
                pipe.hset(keys.sessions(self.node), jid, record)
                pipe.xadd(keys.EVENTS, {b"n": self.node.encode(), b"o": SET, b"j": jid, b"r": record},
                          maxlen=keys.EVENTS_KEPT, approximate=True)
            await pipe.execute()

    # -- the other nodes' sessions ----------------------------------------------------------------------

    async def resync(self) -> None:
        """Mirror every other node's sessions afresh from their hashes; events after the newest one at
        this moment are applied on top (a change seen twice does no harm)."""
        newest = await self.redis.xrevrange(keys.EVENTS, count=1)
        nodes = [n.decode() for n in await self.redis.hkeys(keys.NODES)]
        found: dict[str, tuple[str, dict[bytes, bytes]]] = {}
        for node in nodes:
            if node != self.node:
                for jid, record in (await self.redis.hgetall(keys.sessions(node))).items():
                    found[jid.decode()] = (node, {b"r": record})
        for jid in [j for j in self.remote if j not in found]:
            self._forget(jid)
        for jid, (node, fields) in found.items():
            self._apply_set(node, jid, fields[b"r"])
        self.last_event = newest[0][0] if newest else b"0-0"
        self.resync_needed = False

    async def follow_forever(self) -> None:
        """Apply the other nodes' registry changes as they come; resync after any Redis trouble."""
        while self.running:
            try:
                if self.resync_needed:
                    await self.resync()
                found = await self.redis.xread({keys.EVENTS: self.last_event}, count=1000, block=1000)
                for _stream, entries in found or []:
                    for entry_id, fields in entries:
                        self.last_event = entry_id
                        self.apply(fields)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("cluster: following the session registry failed (%s); resyncing", exc)
                self.resync_needed = True
                await asyncio.sleep(RETRY)

    def apply(self, fields: dict[bytes, bytes]) -> None:
        node = fields.get(b"n", b"").decode()
        if node == self.node:
            return
        op = fields.get(b"o")
        if op == DOWN:
            self.forget_node(node)
        elif op == SET:
            self._apply_set(node, fields.get(b"j", b"").decode(), fields.get(b"r", b""))
        elif op == DEL:
            self._forget(fields.get(b"j", b"").decode(), node)

    def _apply_set(self, node: str, jid_text: str, data: bytes) -> None:
        try:
            record = SessionRecord.decode(data)
            jid = JID.parse(jid_text)
        except (ValueError, KeyError, JIDError, etree.XMLSyntaxError):
            log.error("cluster: node %s registered a session record that does not read: %r", node, jid_text)
            return
        session = self.remote.get(jid_text)
        if session is None or session.node != node:
            if session is not None:
                self.sessions.unmirror(session)
            session = self.remote[jid_text] = RemoteSession(jid, node, self.outbox, self.node)
        try:
            session.update(record)
        except etree.XMLSyntaxError:
            log.error("cluster: node %s registered a presence that does not parse for %s", node, jid_text)
        self.set_carbons(session, session.carbons)
        self.set_notify(session, session.notify)
        current = self.sessions.get(jid)
        if current is None or isinstance(current, RemoteSession):
            self.sessions.mirror(session)
        # else the same full JID is bound here too (a race of two logins): ours wins on this node

    def _forget(self, jid_text: str, node: str | None = None) -> RemoteSession | None:
        session = self.remote.get(jid_text)
        if session is None or (node is not None and session.node != node):
            return None
        del self.remote[jid_text]
        self.sessions.unmirror(session)
        self.set_carbons(session, False)
        self.set_notify(session, ())
        return session

    def forget_node(self, node: str) -> list[RemoteSession]:
        """Drop every session of `node` from the mirror (it stopped or died); returns them."""
        for listener in self.node_gone:
            listener(node)
        gone = [jid for jid, s in self.remote.items() if s.node == node]
        return [s for s in (self._forget(jid) for jid in gone) if s is not None]

    def counts(self) -> dict[str, int]:
        """Sessions per node as this node sees them (its own included)."""
        out = {self.node: len(self.local)}
        for session in self.remote.values():
            out[session.node] = out.get(session.node, 0) + 1
        return out
