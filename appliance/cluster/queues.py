"""Stanzas between nodes: one Redis stream per node, read by that node through a consumer group.

Why streams and not pub/sub: a pub/sub message is gone when its node is not listening at that moment
(a restart, a dropped connection, a crash), while a stream entry stays until the node acknowledges it,
after the local delivery; a node that crashed before that gets it again (or the node that reaps it
redelivers it elsewhere). One stream per node keeps the order of what one node sends to another, since
each node writes to a given stream from one task at a time and reads it from one task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from lxml import etree
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from appliance.cluster import keys
from appliance.cluster.remote import CLOSE, ROUTE, STANZA, RemoteSession, parse
from appliance.core.api import Host
from appliance.core.events import StanzaEvent
from appliance.core.router import Router
from appliance.core.sessions import SessionDirectory
from appliance.core.stream_management import reroute_unacked
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID, JIDError

log = logging.getLogger(__name__)

BATCH = 500  # entries written or read per round trip
RETRY = 0.5  # seconds between attempts while Redis does not answer


class _NodeQueue:
    """What this node still has to write into one other node's stream, in order."""

    __slots__ = ("pending", "posted", "task", "waiters", "written")

    def __init__(self) -> None:
        self.pending: deque[Entry] = deque()
        self.posted = 0
        self.written = 0  # entries written (or given up on); never more than posted
        self.task: asyncio.Task[None] | None = None
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []


# One batch into a node's stream, atomically refused once the node's inbox is closed (KEYS[2]): the node
# that empties a dead node's inbox closes it first, so no write can land after the emptying.
POST_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 1, #ARGV, 3 do redis.call('XADD', KEYS[1], '*', 'j', ARGV[i], 'k', ARGV[i + 1], 'd', ARGV[i + 2]) end
return 1
"""

Entry = tuple[bytes, bytes, bytes]  # target full JID, kind, data
Refused = Callable[[str, list[Entry]], Awaitable[None]]
"""What to do with a batch a node's closed inbox refused (deliver it here, as for a gone session)."""


class Outbox:
    """Writes stanzas for remote sessions into their node's stream; `settle()` waits until written.

    Past `give_up` seconds without Redis, a waiting message goes back to its sender as an error
    (recipient-unavailable) rather than silently nowhere."""

    def __init__(self, redis: Redis, *, router: Router, give_up: float, refused: Refused) -> None:
        self.redis = redis
        self.router = router
        self.give_up = give_up
        self.refused = refused
        self._post = redis.register_script(POST_SCRIPT)
        self._queues: dict[str, _NodeQueue] = {}

    def post(self, node: str, jid: JID, kind: bytes, data: bytes) -> None:
        queue = self._queues.get(node)
        if queue is None:
            queue = self._queues[node] = _NodeQueue()
        queue.pending.append((str(jid).encode(), kind, data))
        queue.posted += 1
        if queue.task is None:
            queue.task = asyncio.get_running_loop().create_task(self._flush(node, queue), name=f"cluster-to-{node}")

    @property
    def busy(self) -> bool:
        return any(q.written < q.posted for q in self._queues.values())

    def settle(self) -> Awaitable[None] | None:
        """An awaitable that ends when everything posted so far is written; None when it already is."""
        futures = []
        loop = asyncio.get_running_loop()
        for queue in self._queues.values():
            if queue.written < queue.posted:
                future: asyncio.Future[None] = loop.create_future()
                queue.waiters.append((queue.posted, future))
                futures.append(future)
        if not futures:
            return None
        return futures[0] if len(futures) == 1 else asyncio.gather(*futures)  # one: no gather to pay for

    async def _flush(self, node: str, queue: _NodeQueue) -> None:
        try:
            while queue.pending:
                batch = [queue.pending.popleft() for _ in range(min(BATCH, len(queue.pending)))]
                written = await self._write(node, batch)
                if written is None:
                    await self._bounce(batch)
                elif not written:
                    await self.refused(node, batch)
                queue.written += len(batch)
                self._wake(queue)
        finally:
            queue.task = None
            if queue.pending:  # posted while the task was ending
                queue.task = asyncio.get_running_loop().create_task(self._flush(node, queue), name=f"cluster-to-{node}")

    async def _write(self, node: str, batch: list[Entry]) -> bool | None:
        """True: in the node's stream; False: its inbox is closed; None: Redis unreachable past give_up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up
        args = [part for entry in batch for part in entry]
        while True:
            try:
                return bool(await self._post(keys=[keys.inbox(node), keys.closed(node)], args=args))
            except (RedisError, OSError) as exc:
                if loop.time() > deadline:
                    log.error("cluster: %d stanzas for node %s not queued, Redis unreachable for %.0f s: %s",
                              len(batch), node, self.give_up, exc)
                    return None
                await asyncio.sleep(RETRY)

    async def _bounce(self, batch: list[Entry]) -> None:
        for _jid, kind, data in batch:
            if kind == STANZA:
                stanza = parse(data)
                await self.router.bounce(stanza, StanzaError.recipient_unavailable(
                    "The server holding the recipient's session cannot be reached; try again later"))

    @staticmethod
    def _wake(queue: _NodeQueue) -> None:
        still = []
        for target, future in queue.waiters:
            if queue.written >= target:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((target, future))
        queue.waiters = still

    async def close(self) -> None:
        """Let the writes under way finish (for a clean stop)."""
        waiting = self.settle()
        if waiting is not None:
            try:
                async with asyncio.timeout(self.give_up):
                    await waiting
            except TimeoutError:
                log.warning("cluster: stopping with stanzas for other nodes not written")


class Gone:
    """The session a queued stanza was for, when it is no longer here (rerouting excludes nobody real)."""

    __slots__ = ("jid",)

    def __init__(self, jid: JID) -> None:
        self.jid = jid


HANDOVER_KEPT = 60.0  # seconds a replaced session's successor is remembered for its unacknowledged stanzas


class Delivery:
    """Hands one queued stanza to the local session it is for, or, when that session is gone, on to the
    account's other resources or offline storage, as stream management does for unacknowledged ones.

    A session replaced by a login of the same full JID on another node (a client that could not resume
    there) hands its unacknowledged stanzas to its successor, in order, instead of offline storage, which
    the successor may already have read."""

    def __init__(self, *, sessions: SessionDirectory, router: Router, hosts: dict[str, Host],
                 outbox: Outbox) -> None:
        self.sessions = sessions
        self.router = router
        self.hosts = hosts
        self.outbox = outbox
        self.successors: dict[JID, str] = {}  # full JID -> the node its new session is on
        self.handlers: dict[bytes, Callable[[JID, bytes], Awaitable[None]]] = {}  # other kinds (ROOM_ADMIN)

    def on_undelivered(self, event: StanzaEvent) -> bool:
        """`events.SM_UNDELIVERED`: a stanza of a replaced session goes to the successor's node."""
        node = self.successors.get(event.to_jid) if event.to_jid is not None else None
        if node is None:
            return False
        self.outbox.post(node, event.to_jid, STANZA, etree.tostring(event.stanza))  # type: ignore[arg-type]
        return True

    async def __call__(self, fields: dict[bytes, bytes]) -> None:
        try:
            jid = JID.parse(fields[b"j"].decode())
            kind, data = fields[b"k"], fields[b"d"]
        except (KeyError, UnicodeDecodeError, JIDError):
            log.error("cluster: a queued entry without a valid target: %r", fields)
            return
        if kind == ROUTE:  # for a room this node runs (cluster/rooms.py): its service handles it, or sends it on
            await self.router.route(parse(data), origin=None)
            return
        handler = self.handlers.get(kind)
        if handler is not None:
            await handler(jid, data)
            return
        session = self.sessions.get(jid)
        if session is not None and not isinstance(session, RemoteSession):
            if kind == CLOSE:
                condition, text, successor = [*data.decode().split("\n", 2), "", ""][:3]
                if successor:
                    self.successors[jid] = successor
                    asyncio.get_running_loop().call_later(HANDOVER_KEPT, self.successors.pop, jid, None)
                session.close(condition or None, text or None)
            else:
                session.send_bytes(data)
            return
        host = self.hosts.get(jid.domain)
        if kind != STANZA or host is None:
            return
        await reroute_unacked(host=host, router=self.router, sessions=self.sessions, owner=Gone(jid),  # type: ignore[arg-type]
                              stanzas=[data])


class Inbox:
    """Reads this node's stream through the consumer group and acknowledges each entry once delivered."""

    def __init__(self, redis: Redis, node: str, deliver: Callable[[dict[bytes, bytes]], Awaitable[None]]) -> None:
        self.redis = redis
        self.node = node
        self.stream = keys.inbox(node)
        self.deliver = deliver
        self.running = True  # the loop ends at its next turn once False: redis-py may swallow a cancel

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, keys.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Read forever: first what an earlier run of this node read but never acknowledged (a crash),
        then new entries. Survives Redis going away and coming back (possibly empty).

        The entries of one batch are acknowledged (and deleted) in the same round trip that reads the
        next batch: one round trip per batch instead of two, and never before they were delivered."""
        backlog = True
        grouped = False
        delivered: list[bytes] = []
        while self.running:
            try:
                if not grouped:  # again after any trouble: a Redis restarted empty has no group
                    await self.ensure_group()
                    grouped = True
                start = "0" if backlog else ">"
                async with self.redis.pipeline(transaction=False) as pipe:
                    if delivered:
                        pipe.xack(self.stream, keys.GROUP, *delivered)
                        pipe.xdel(self.stream, *delivered)
                    pipe.xreadgroup(keys.GROUP, self.node, {self.stream: start}, count=BATCH,
                                    block=None if backlog else 1000)
                    found = (await pipe.execute())[-1]
                delivered = []
                entries = found[0][1] if found else []
                if backlog and not entries:
                    backlog = False
                    continue
                delivered = await self._handle(entries)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("cluster: reading this node's queue failed (%s); retrying", exc)
                backlog = True  # what was read but not acknowledged comes again after the reconnection
                grouped = False
                delivered = []  # read again as the backlog: redelivered rather than lost
                await asyncio.sleep(RETRY)
        if delivered:  # stopping: acknowledge the last batch
            with contextlib.suppress(RedisError, OSError):
                await self._acknowledge(delivered)

    async def _handle(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[bytes]:
        """Deliver a batch; returns the ids to acknowledge."""
        ids = []
        for entry_id, fields in entries:
            try:
                await self.deliver(fields)
            except Exception:
                log.exception("cluster: delivering a queued stanza failed")
            ids.append(entry_id)
        return ids

    async def _acknowledge(self, ids: list[bytes]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.stream, keys.GROUP, *ids)
            pipe.xdel(self.stream, *ids)
            await pipe.execute()


async def drain(redis: Redis, node: str, deliver: Callable[[dict[bytes, bytes]], Awaitable[None]]) -> int:
    """Deliver everything left in a dead node's stream (read or not), then delete the stream."""
    stream = keys.inbox(node)
    count = 0
    start = "-"
    while True:
        entries = await redis.xrange(stream, min=start, max="+", count=BATCH)
        if not entries:
            break
        for _entry_id, fields in entries:
            try:
                await deliver(fields)
            except Exception:
                log.exception("cluster: redelivering a stanza of node %s failed", node)
            count += 1
        start = "(" + entries[-1][0].decode()
    await redis.delete(stream)
    return count
