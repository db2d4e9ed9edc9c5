"""Changes to shared data cached by the nodes (appliance/core/changes), carried on one Redis stream.

Every node appends its announcements to `parlour:changes` and follows the stream (XREAD), as it follows
the session registry. A stream rather than pub/sub: a node whose connection broke reads on from where
it was when Redis kept its data, and either way it cannot tell what it missed, so after any Redis trouble
it drops everything it cached (listeners hear key None) and reads the database again: correct across a
Redis restart with or without its data. An announcement that cannot be written waits in order and is
written when Redis answers again; the announcer waits for it at most `WAIT` seconds.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from appliance.cluster import keys
from appliance.cluster.queues import BATCH, RETRY
from appliance.core.changes import SharedChanges

log = logging.getLogger(__name__)

WAIT = 2.0  # seconds an announcer waits for its announcement to reach Redis before going on
KEPT = 10_000  # approximate length the stream is trimmed to

Change = tuple[bytes, bytes, bytes, asyncio.Future[None]]  # topic, key, data, set once written


class ChangeBus:
    """The `ChangeLink` of a cluster node: writes this node's announcements, hears the others'."""

    def __init__(self, redis: Redis, node: str, changes: SharedChanges) -> None:
        self.redis = redis
        self.node = node.encode()
        self.changes = changes
        self._writes: asyncio.Queue[Change] = asyncio.Queue()
        self.last = b"0-0"
        self.running = True  # the loops end at their next turn once False: redis-py may swallow a cancel

    async def publish(self, topic: str, key: str, data: bytes) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writes.put_nowait((topic.encode(), key.encode(), data, done))
        try:
            await asyncio.wait_for(asyncio.shield(done), WAIT)
        except TimeoutError:
            log.warning("cluster: Redis did not take a change to %s in time; it is sent when Redis answers", topic)

    async def start(self) -> None:
        newest = await self.redis.xrevrange(keys.CHANGES, count=1)
        self.last = newest[0][0] if newest else b"0-0"

    async def write_forever(self) -> None:
        while self.running:
            batch = [await self._writes.get()]
            while not self._writes.empty() and len(batch) < BATCH:
                batch.append(self._writes.get_nowait())
            while self.running:
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for topic, key, data, _done in batch:
                            pipe.xadd(keys.CHANGES, {b"n": self.node, b"t": topic, b"k": key, b"d": data},
                                      maxlen=KEPT, approximate=True)
                        await pipe.execute()
                    break
                except (RedisError, OSError) as exc:
                    log.warning("cluster: announcing changes failed (%s); retrying", exc)
                    await asyncio.sleep(RETRY)
            for *_change, done in batch:
                if not done.done():
                    done.set_result(None)

    async def follow_forever(self) -> None:
        """Apply the other nodes' announcements; after Redis trouble, every cache is dropped."""
        lost = False
        while self.running:
            try:
                if lost:
                    await self.start()  # from now on; what came before is re-read from the database
                    await self.changes.lost()
                    lost = False
                found = await self.redis.xread({keys.CHANGES: self.last}, count=BATCH, block=1000)
                for _stream, entries in found or []:
                    for entry_id, fields in entries:
                        self.last = entry_id
                        if fields.get(b"n") != self.node:
                            await self.changes.heard(fields.get(b"t", b"").decode(), fields.get(b"k", b"").decode(),
                                                     fields.get(b"d", b""))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("cluster: following shared changes failed (%s); dropping cached data", exc)
                lost = True
                await asyncio.sleep(RETRY)
