"""Chat rooms across a cluster: each room is run by one node at a time, the holder of its lease in Redis.

A stanza for a room (or one of its occupants) that reaches any node goes to the room's owner through the
owner's inbox stream; the first stanza for a room nobody owns makes the receiving node take the lease
(SET NX PX, with a fencing token from a counter) and load the room from the shared database. The owner
renews its leases; a node that cannot renew in time stops acting for its rooms at once (it forwards their
stanzas like any other node), so two nodes do not run the same room across a Redis partition or a long
pause; it takes a room back as it was only when the fencing token shows nobody ran it in between.

The owner records who is in each room (`parlour:room-occupants:<room>`: real JID, nickname, last
presence). When an owner dies, the node that takes the room over puts those occupants back silently, then
takes out those whose session died too: the others' clients notice nothing, and what they had queued for
the dead owner (the reaper redelivers its inbox) is handled as from occupants, so no acknowledged room
message is lost. We chose this over telling them to rejoin (an unavailable self-presence with status
332): clients differ in what they do with such a removal (show it and wait for the user, rejoin at their
next self-ping of XEP-0410, or nothing), and messages sent meanwhile would bounce; a silent takeover needs
no client's help. A clean stop hands the rooms on the same way (the lease goes, the record stays).

Each node remembers which node runs a room it forwarded to, so a busy room run elsewhere costs no lease
lookup per stanza. The entry goes when that node's inbox closes (it
stopped or died: the registry forgets it) and when any node takes a room's lease with a new token (it
announces that on the shared changes stream). A stanza that still goes to a former owner is not lost: that
node looks the room up itself and passes it on (or runs the room, if nobody holds it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from lxml import etree
from redis.asyncio import Redis
from redis.exceptions import RedisError

from appliance.cluster import keys
from appliance.cluster.queues import Outbox
from appliance.cluster.remote import ROOM_ADMIN, ROUTE, parse
from appliance.core.changes import SharedChanges
from appliance.core.events import StanzaEvent
from appliance.util.tasks import TaskSupervisor
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT

log = logging.getLogger(__name__)

MESSAGE = f"{{{NS_CLIENT}}}message"
LEASE_TOPIC = "room-lease"  # shared changes: a node took a room's lease (key: room JID, data: "node token")
OWNERS_KEPT = 100_000  # rooms run elsewhere whose owner a node remembers (the oldest goes first)
Handler = Callable[[StanzaEvent], Awaitable[None]]

# Take the lease unless another living node holds it (a holder whose alive key expired is dead: its lease
# goes at once, not a TTL later); a node that finds its own name there (renewing, or a restarted run of it)
# keeps it. Returns "node token". KEYS: lease, fence counter, index; ARGV: node, ms, room, alive-key prefix.
CLAIM_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held then
  local holder = string.match(held, '^(.*) %d+$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return held
  end
  if redis.call('EXISTS', ARGV[4] .. holder) == 1 then return held end
end
local value = ARGV[1] .. ' ' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
return value
"""
# Renew only a lease still ours (same fencing token): 1 renewed, 0 lost. KEYS: lease; ARGV: "node token", ms.
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Give the lease up if still ours, with its index entry; ARGV[3] "1": forget the occupants too (nobody is
# in the room), "0": keep them for the next owner (a clean stop). KEYS: lease, occupants, index;
# ARGV: "node token", room, forget.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
"""


@dataclass(slots=True)
class Lease:
    """A room this node owns: the value in Redis ("node token") and until when it may act (monotonic)."""

    value: str
    until: float

    @property
    def token(self) -> int:
        return int(self.value.rsplit(" ", 1)[1])


Occupancy = dict[str, tuple[str, etree._Element | None]]
"""Real full JID -> (nickname, last presence payload) of everybody in a room."""


class RoomHost(Protocol):
    """One chat service's rooms on this node, as the cluster needs them (adapted from the MUC module)."""

    domain: str

    def loaded(self, name: str) -> bool: ...

    async def load(self, name: str) -> None:
        """Bring the room from the shared database (configuration, affiliations, subject, history);
        nothing when it is not stored (a temporary room, or none yet)."""

    def drop(self, name: str) -> object | None:
        """Stop running the room here without a word to anyone; returns it for `resume`."""

    def resume(self, room: object) -> None:
        """Run a dropped room again, as it was (nobody else ran it meanwhile)."""

    def occupants(self, name: str) -> Occupancy: ...

    async def restore(self, name: str, occupants: list[tuple[JID, str, etree._Element | None]]) -> None:
        """Put back the occupants a dead owner had, silently (a temporary room comes back with the
        default configuration: only stored rooms keep theirs)."""

    async def remove_gone(self, name: str, present: Callable[[JID], bool]) -> None:
        """Take out the occupants whose session is gone (its node died, or it logged out elsewhere)."""

    def idle(self, name: str) -> bool:
        """Nobody in it and not waiting for its configuration: the lease may go (the next stanza loads it)."""


class RoomLeases:
    """The Redis side: leases with fencing tokens, the index of leased rooms, recorded occupants."""

    def __init__(self, redis: Redis, node: str, ttl: float) -> None:
        self.redis = redis
        self.node = node
        self.ttl = max(1.0, ttl)
        self.held: dict[str, Lease] = {}  # room JID -> our lease
        self._claim = redis.register_script(CLAIM_SCRIPT)
        self._renew = redis.register_script(RENEW_SCRIPT)
        self._release = redis.register_script(RELEASE_SCRIPT)

    @property
    def _ms(self) -> int:
        return int(self.ttl * 1000)

    def _until(self, started: float) -> float:
        # Stop acting a quarter of the TTL before Redis lets the lease go: a late event loop eats into it.
        return started + self.ttl * 0.75

    def valid(self, room: str) -> bool:
        lease = self.held.get(room)
        return lease is not None and time.monotonic() < lease.until

    async def claim(self, room: str) -> tuple[str, int]:
        """The room's owner after taking the lease if it was free, and the lease's fencing token."""
        started = time.monotonic()
        value = (await self._claim(keys=[keys.room("lease", room), keys.room("fence", room), keys.ROOMS],
                                   args=[self.node, self._ms, room, keys.alive("")])).decode()
        node, token = value.rsplit(" ", 1)
        if node != self.node:
            self.held.pop(room, None)
        else:
            self.held[room] = Lease(value, self._until(started))
        return node, int(token)

    async def renew(self) -> list[tuple[str, int]]:
        """Renew every lease; returns the rooms lost (taken by another node, or expired meanwhile)."""
        if not self.held:
            return []
        started = time.monotonic()
        rooms = list(self.held.items())
        async with self.redis.pipeline(transaction=False) as pipe:
            for room, lease in rooms:
                await self._renew(keys=[keys.room("lease", room)], args=[lease.value, self._ms], client=pipe)
            answers = await pipe.execute()
        lost = []
        for (room, lease), renewed in zip(rooms, answers, strict=True):
            if self.held.get(room) is not lease:
                continue  # released or claimed again meanwhile
            if renewed:
                lease.until = self._until(started)
            else:
                del self.held[room]
                lost.append((room, lease.token))
        return lost

    def expired(self) -> list[tuple[str, int]]:
        """Rooms whose lease could not be renewed in time (Redis away, a long pause): ours no longer."""
        now = time.monotonic()
        gone = [(room, lease.token) for room, lease in self.held.items() if now >= lease.until]
        for room, _token in gone:
            del self.held[room]
        return gone

    async def release(self, room: str, *, keep_occupants: bool = False) -> None:
        lease = self.held.pop(room, None)
        if lease is not None:
            await self._release(keys=[keys.room("lease", room), keys.room("occupants", room), keys.ROOMS],
                                args=[lease.value, room, "0" if keep_occupants else "1"])

    async def record(self, room: str, changed: dict[str, bytes], left: list[str], *, replace: bool = False) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            if replace:
                pipe.delete(keys.room("occupants", room))
            if changed:
                pipe.hset(keys.room("occupants", room), mapping=changed)  # type: ignore[arg-type]
            if left:
                pipe.hdel(keys.room("occupants", room), *left)
            await pipe.execute()

    async def recorded(self, room: str) -> dict[bytes, bytes]:
        """Who the previous owner had in the room (it died, or stopped and handed the room on)."""
        return await self.redis.hgetall(keys.room("occupants", room))

    async def orphans(self) -> list[str]:
        """Rooms in use whose owner node is dead (its alive key expired): to be taken over now."""
        index = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(keys.ROOMS)).items()}
        owners = sorted({n for n in index.values() if n != self.node})
        if not owners:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in owners:
                pipe.exists(keys.alive(node))
            alive = dict(zip(owners, await pipe.execute(), strict=True))
        return [room for room, node in index.items() if node in alive and not alive[node]]

    async def any_other_node(self) -> str | None:
        """A living node other than this one (where a stopping node sends its rooms' stanzas)."""
        for name in sorted(n.decode() for n in await self.redis.hkeys(keys.NODES)):
            if name != self.node and await self.redis.exists(keys.alive(name)):
                return name
        return None


@dataclass(frozen=True, slots=True)
class RoomInUse:
    """A room some node runs now, as `parlour cluster rooms`, the console and the API show it."""

    jid: str
    node: str
    occupants: int  # sessions in it, as its owner last recorded


async def rooms_in_use(redis: Redis) -> list[RoomInUse]:
    """Every room a node holds the lease of (rooms nobody is in are not run anywhere)."""
    index = sorted((k.decode(), v.decode()) for k, v in (await redis.hgetall(keys.ROOMS)).items())
    async with redis.pipeline(transaction=False) as pipe:
        for room, _node in index:
            pipe.hlen(keys.room("occupants", room))
        counts = await pipe.execute()
    return [RoomInUse(room, node, count) for (room, node), count in zip(index, counts, strict=True)]


def _encode(nick: str, presence: etree._Element | None) -> bytes:
    return json.dumps({"n": nick, "p": etree.tostring(presence).decode() if presence is not None else ""}).encode()


def _decode(real: bytes, data: bytes) -> tuple[JID, str, etree._Element | None] | None:
    try:
        raw = json.loads(data)
        return JID.parse(real.decode()), str(raw["n"]), parse(raw["p"].encode()) if raw["p"] else None
    except (ValueError, KeyError, TypeError, JIDError, etree.XMLSyntaxError):
        log.error("cluster: a room occupant record that does not read: %r", real)
        return None


class ClusterRooms:
    """Puts itself in front of a chat service's handler: runs the rooms this node owns, sends the
    others' stanzas to their owners, takes over rooms whose owner died."""

    def __init__(self, leases: RoomLeases, outbox: Outbox, rooms: RoomHost, *, handler: Handler,
                 present: Callable[[JID], bool], changes: SharedChanges | None = None) -> None:
        self.leases = leases
        self.changes = changes if changes is not None else SharedChanges()
        self.owners: dict[str, str] = {}  # room JID run by another node -> that node
        self.outbox = outbox
        self.rooms = rooms
        self.handler = handler
        self.present = present  # whether a real full JID has a session anywhere in the cluster
        self.recorded: dict[str, dict[str, tuple[str, int]]] = {}  # room JID -> what Redis has of it
        self.suspended: dict[str, tuple[object, int]] = {}  # room JID -> the room as its lease went, the token
        self.stopping = False
        self.busy: dict[str, int] = {}  # room JID -> stanzas or changes being handled (never let go meanwhile)
        # room JID -> its lock while some stanza holds or waits for it: weak, so rooms addressed once (or never
        # existing) leave nothing behind on a node that runs for months
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._stops: list[Callable[[], None]] = []

    def start(self, tasks: TaskSupervisor, every: float) -> None:
        self._stops = [tasks.every(every, self.tick, f"cluster-rooms-{self.rooms.domain}"),
                       self.changes.listen(LEASE_TOPIC, self._leased_elsewhere)]

    async def _leased_elsewhere(self, room: str | None, _data: bytes) -> None:
        """Another node took a room's lease (None: announcements may have been missed)."""
        if room is None:
            self.owners.clear()
        else:
            self.owners.pop(room, None)

    def node_gone(self, node: str) -> None:
        """`node` stopped or died (its inbox is closed): the rooms it ran are looked up again."""
        for room in [room for room, owner in self.owners.items() if owner == node]:
            del self.owners[room]

    async def handle(self, event: StanzaEvent) -> None:
        """The service domain's handler: the service itself answers here, a room's stanzas go to its owner."""
        to = event.to_jid
        if to is None or to.local is None:
            await self.handler(event)
            return
        room = str(to.bare())
        owner = self.owners.get(room)
        if owner is None:
            async with self._lock(room):  # one claim and load at a time per room
                owner = await self._owner(room, to.local)
        if owner != self.leases.node:
            if event.stanza.get("from") is None:
                event.stanza.set("from", str(event.from_jid))
            self.outbox.post(owner, to, ROUTE, etree.tostring(event.stanza))
            return
        # only presence and IQs change who is in a room: messages cost no Redis write
        await self._run(room, to.local, lambda: self.handler(event), occupancy=event.stanza.tag != MESSAGE)

    def _lock(self, room: str) -> asyncio.Lock:
        """One claim and load at a time per room."""
        lock = self._locks.get(room)
        if lock is None:
            lock = self._locks[room] = asyncio.Lock()
        return lock

    async def _run(self, room: str, name: str, act: Callable[[], Awaitable[None]], *, occupancy: bool = True) -> None:
        self.busy[room] = self.busy.get(room, 0) + 1
        try:
            await act()
        finally:
            if self.busy[room] == 1:
                del self.busy[room]
            else:
                self.busy[room] -= 1
            await self._after(room, name, occupancy=occupancy)

    async def run_here(self, name: str, act: Callable[[], Awaitable[None]]) -> str:
        """Run `act` on the room if this node runs it (taking its lease when nobody holds it; the room is
        loaded then); returns the node running it (when another one, `act` is not run)."""
        room = f"{name}@{self.rooms.domain}"
        async with self._lock(room):
            owner = await self._owner(room, name)
        if owner == self.leases.node:
            await self._run(room, name, act)
        return owner

    def post_admin(self, node: str, name: str, change: bytes) -> None:
        """Send an administrator's change to the node running the room."""
        self.outbox.post(node, JID.make(name, self.rooms.domain), ROOM_ADMIN, change)

    async def _owner(self, room: str, name: str) -> str:
        if self.leases.valid(room) and self.rooms.loaded(name):
            return self.leases.node
        if self.stopping:  # handing the rooms on: another node takes this one
            self._forget(room, name)
            return await self.leases.any_other_node() or self.leases.node
        held = self.leases.held.get(room)
        node, token = await self.leases.claim(room)
        if node != self.leases.node:
            self._forget(room, name)  # it was ours until the lease went
            self._remember(room, node)
            return node
        self.owners.pop(room, None)
        if held is None or held.token != token:  # a new lease: the others forget where the room was
            await self.changes.announce(LEASE_TOPIC, room, f"{node} {token}".encode())
        if held is not None and held.token != token and self.rooms.loaded(name):
            self._suspend(room, name, held.token)  # a new lease (Redis lost the old one): as after a loss
        if not self.rooms.loaded(name):
            await self._take_over(room, name, token)
        return node

    def _remember(self, room: str, node: str) -> None:
        if room not in self.owners and len(self.owners) >= OWNERS_KEPT:
            del self.owners[next(iter(self.owners))]
        self.owners[room] = node

    def _suspend(self, room: str, name: str, token: int) -> None:
        """The lease went (not renewed in time, or Redis lost it): stop acting for the room at once, but
        keep it, in case this node gets the next lease with nobody having run the room in between."""
        self.recorded.pop(room, None)
        dropped = self.rooms.drop(name)
        if dropped is not None:
            self.suspended[room] = (dropped, token)

    def _forget(self, room: str, name: str) -> None:
        self.recorded.pop(room, None)
        self.suspended.pop(room, None)
        self.rooms.drop(name)

    async def _take_over(self, room: str, name: str, token: int) -> None:
        """Run the room: as this node left it when the fencing token shows that nobody ran it since (the
        next token, or a counter Redis lost with its data); else loaded from the database, with the
        occupants its previous owner had put back."""
        kept = self.suspended.pop(room, None)
        self._forget(room, name)
        if kept is not None and (token == kept[1] + 1 or token <= kept[1]):
            self.rooms.resume(kept[0])
            log.info("cluster: room %s is this node's again, as it was", room)
            await self._record(room, name, whole=True)
            return
        await self.rooms.load(name)
        found = [o for o in (_decode(real, data) for real, data in (await self.leases.recorded(room)).items()) if o]
        if found:
            # everybody first, then out go those whose session is gone: the others see them leave
            await self.rooms.restore(name, found)
            await self.rooms.remove_gone(name, self.present)
            log.info("cluster: took over room %s with %d occupants", room, len(self.rooms.occupants(name)))
        if self.rooms.loaded(name):
            await self._record(room, name, whole=True)

    async def _after(self, room: str, name: str, *, occupancy: bool = True) -> None:
        """After a stanza: give the lease up once nobody is in the room, else record who is."""
        if room in self.busy:
            return  # the last one to finish decides
        if not self.rooms.loaded(name) or self.rooms.idle(name):
            self._forget(room, name)
            await self.leases.release(room)
        elif occupancy:
            await self._record(room, name)

    async def _record(self, room: str, name: str, *, whole: bool = False) -> None:
        """Write the changes in the room's occupancy to Redis (`whole`: replace what is there)."""
        now = self.rooms.occupants(name)
        before = {} if whole else self.recorded.get(room, {})
        marks = {real: (nick, id(presence)) for real, (nick, presence) in now.items()}
        if marks == before and not whole:
            return
        changed = {real: _encode(nick, presence) for real, (nick, presence) in now.items()
                   if before.get(real) != marks[real]}
        left = [real for real in before if real not in now]
        await self.leases.record(room, changed, left, replace=whole)
        self.recorded[room] = marks

    async def tick(self) -> None:
        """Renew the leases; stop at once for rooms whose lease is lost; take out occupants whose session
        is gone; take over rooms whose owner died."""
        lost = self.leases.expired()
        try:
            lost += await self.leases.renew()
        except (RedisError, OSError) as exc:
            log.warning("cluster: renewing room leases failed (%s)", exc)
        for room, token in lost:
            log.warning("cluster: the lease of room %s went; this node stops running it", room)
            self._suspend(room, JID.parse(room).local or "", token)
        try:
            for room, _token in lost:  # at once, before another node does: the room goes on as it was
                await self._reclaim(room)
            for room in list(self.leases.held):
                name = JID.parse(room).local or ""
                if self.rooms.loaded(name):
                    await self.rooms.remove_gone(name, self.present)
                await self._after(room, name)
            for room in await self.leases.orphans():
                if JID.parse(room).domain == self.rooms.domain:
                    await self._reclaim(room)
        except (RedisError, OSError) as exc:
            log.warning("cluster: looking after the rooms failed (%s)", exc)

    async def _reclaim(self, room: str) -> None:
        """Take the room's lease if nobody holds it (its owner died, or Redis lost this node's lease)."""
        name = JID.parse(room).local
        if name is None:
            return
        async with self._lock(room):
            if await self._owner(room, name) == self.leases.node:
                await self._after(room, name)

    async def stop(self) -> None:
        """A clean stop: every room is handed on (its lease goes, its occupants stay recorded for the next
        owner); what still comes for a room goes to another node."""
        self.stopping = True
        for stop in self._stops:
            stop()
        self._stops = []
        for room in list(self.leases.held):
            self._forget(room, JID.parse(room).local or "")
            try:
                await self.leases.release(room, keep_occupants=True)
            except (RedisError, OSError) as exc:
                log.warning("cluster: handing room %s on failed (%s); its lease expires", room, exc)
