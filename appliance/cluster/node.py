"""One node of a cluster: its heartbeat, the watch over the others, and the end of a dead node's sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from appliance import __version__
from appliance.cluster import keys
from appliance.cluster.changes import ChangeBus
from appliance.cluster.queues import RETRY, Delivery, Entry, Inbox, Outbox, drain
from appliance.cluster.registry import DOWN, Carbons, Notify, Registry, SetCarbons, SetNotify
from appliance.cluster.remote import RemoteSession, SessionRecord
from appliance.config.model import ClusterConfig
from appliance.core import events
from appliance.core.api import Host
from appliance.core.changes import SharedChanges
from appliance.core.router import Router
from appliance.core.sessions import SessionDirectory
from appliance.util.tasks import TaskSupervisor
from appliance.xmpp.jid import JID, JIDError

log = logging.getLogger(__name__)

SessionEnded = Callable[[Host, RemoteSession], Awaitable[None]]
"""Tell a host's modules that a dead node's session ended (presence unavailable to contacts, ...)."""


def node_name(config: ClusterConfig) -> str:
    return config.node or socket.gethostname().split(".")[0]


def connect(url: str) -> Redis:
    """A redis-py asyncio client with timeouts, so a Redis that went away is noticed, not waited for."""
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=10)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as `parlour cluster status` and the console show it."""

    name: str
    alive: bool
    sessions: int
    started: float
    pid: int
    version: str
    seconds_since_heartbeat: float | None  # None: no heartbeat key (dead or stopped)


class ClusterNode:
    """Joins the cluster at `start()`, leaves it at `stop()`; between them keeps this node's sessions in
    the registry, its inbox read, and every other node watched."""

    def __init__(self, config: ClusterConfig, *, sessions: SessionDirectory, router: Router,
                 hosts: dict[str, Host], tasks: TaskSupervisor, session_ended: SessionEnded,
                 carbons: Carbons, set_carbons: SetCarbons, notify: Notify, set_notify: SetNotify,
                 changes: SharedChanges) -> None:
        self.config = config
        self.name = node_name(config)
        self.redis = connect(config.redis_url)
        self.sessions = sessions
        self.hosts = hosts
        self.tasks = tasks
        self.session_ended = session_ended
        self.outbox = Outbox(self.redis, router=router, give_up=config.expiry, refused=self._refused)
        self.registry = Registry(self.redis, self.name, sessions=sessions, outbox=self.outbox, carbons=carbons,
                                 set_carbons=set_carbons, notify=notify, set_notify=set_notify)
        self.delivery = Delivery(sessions=sessions, router=router, hosts=hosts, outbox=self.outbox)
        self.inbox = Inbox(self.redis, self.name, self.delivery)
        self.changes = changes
        self.bus = ChangeBus(self.redis, self.name, changes)
        self.started = time.time()
        self._stops: list[Callable[[], None]] = []
        self.leaving: list[Callable[[], Awaitable[None]]] = []  # run first at stop, while Redis is still used
        self._running: list[asyncio.Task[None]] = []
        self._healthy_since = time.monotonic()  # since when every heartbeat reached Redis

    async def _refused(self, node: str, batch: list[Entry]) -> None:
        """`node`'s inbox is closed (dead and emptied, or stopped): its sessions are gone; deliver here."""
        self.registry.forget_node(node)
        for jid, kind, data in batch:
            await self.delivery({b"j": jid, b"k": kind, b"d": data})

    @property
    def _expiry_ms(self) -> int:
        return int(self.config.expiry * 1000)

    async def start(self) -> None:
        """Join: end what a previous run of this node left (a kill), register, mirror the others."""
        redis = self.redis
        if await redis.exists(keys.alive(self.name)):
            log.warning("cluster: node %s was alive moments ago: a previous run that was killed, or another "
                        "node with the same name (each node needs its own [cluster] node); taking over", self.name)
        leftovers = await redis.hexists(keys.NODES, self.name) or await redis.exists(keys.sessions(self.name))
        await self._register()
        await self.inbox.ensure_group()
        await self.registry.resync()
        await self.bus.start()
        self.sessions.link = self.registry
        self.changes.link = self.bus
        self._stops = [host.hooks.add(events.SM_UNDELIVERED, self.delivery.on_undelivered, events.GUARD)
                       for host in self.hosts.values()]
        self._running = [
            self.tasks.spawn(self.registry.write_forever(), "cluster-registry-write"),
            self.tasks.spawn(self.registry.follow_forever(), "cluster-registry-follow"),
            # first what a killed run of this node had read but not acknowledged, then new entries
            self.tasks.spawn(self.inbox.run(), "cluster-inbox"),
            self.tasks.spawn(self.bus.write_forever(), "cluster-changes-write"),
            self.tasks.spawn(self.bus.follow_forever(), "cluster-changes-follow"),
        ]
        if leftovers:
            await self.reap(self.name, force=True)
        self._stops += [self.tasks.every(self.config.heartbeat, self.heartbeat, "cluster-heartbeat"),
                        self.tasks.every(self.config.heartbeat, self.watch, "cluster-watch")]
        log.info("cluster: node %s joined (%d other sessions)", self.name, len(self.registry.remote))

    async def shared_secret(self, name: str) -> bytes:
        """A random secret the same on every node: the first node to ask makes it."""
        return await shared_secret(self.redis, name)

    async def _register(self) -> None:
        facts = json.dumps({"started": self.started, "pid": os.getpid(), "version": __version__})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.alive(self.name), str(time.time()), px=self._expiry_ms)
            pipe.hset(keys.NODES, self.name, facts)
            pipe.delete(keys.closed(self.name))
            await pipe.execute()

    async def heartbeat(self) -> None:
        """Renew the alive key; when Redis forgot this node (restarted empty), register it and its
        sessions again; when the others declared it dead (cut off longer than the expiry), end its
        sessions so the clients log in afresh and their contacts see them again."""
        try:
            if await self.redis.hexists(keys.NODES, self.name):
                await self.redis.set(keys.alive(self.name), str(time.time()), px=self._expiry_ms)
                return
            if await self.redis.exists(keys.closed(self.name)):
                log.warning("cluster: the other nodes ended this node's sessions while it was cut off from "
                            "Redis; closing them so the clients reconnect")
                for session in list(self.registry.local):
                    session.close("reset", "This server lost contact with its cluster; please reconnect")
            await self._register()
            await self.registry.register_all()
            log.warning("cluster: node %s registered again (Redis had lost it)", self.name)
        except (RedisError, OSError) as exc:
            log.warning("cluster: heartbeat failed (%s)", exc)
            self._healthy_since = time.monotonic()  # counts again from the next heartbeat that works

    async def watch(self) -> None:
        """End the sessions of every node whose heartbeat stopped.

        Only once this node's own heartbeats have reached Redis for a whole expiry: after Redis was away
        (or restarted) longer than that, every node's key is gone, and the others need that long to
        renew theirs before a missing one means a dead node."""
        if time.monotonic() - self._healthy_since < self.config.expiry:
            return
        try:
            nodes = [n.decode() for n in await self.redis.hkeys(keys.NODES)]
            for node in nodes:
                if node != self.name and not await self.redis.exists(keys.alive(node)):
                    await self.reap(node)
        except (RedisError, OSError) as exc:
            log.warning("cluster: watching the other nodes failed (%s)", exc)

    async def reap(self, node: str, *, force: bool = False) -> None:
        """A node is dead: the first node to take the lock ends its sessions (modules tell contacts) and
        delivers what was queued for it elsewhere; every node drops them from its mirror."""
        self.registry.forget_node(node)
        if not await self.redis.set(keys.reaping(node), self.name, nx=True, px=self._expiry_ms * 6):
            if not force:
                return
            log.info("cluster: waiting for another node to finish reaping %s", node)
            while await self.redis.exists(keys.reaping(node)):
                await asyncio.sleep(0.2)
            return
        own = node == self.name  # a killed run of this node: its queue is read by this run's inbox
        try:
            if not own:  # from now on writes to its inbox are refused: what it holds is all there is
                await self.redis.set(keys.closed(node), self.name, px=self._expiry_ms * 60)
            records = await self.redis.hgetall(keys.sessions(node))
            await self.redis.xadd(keys.EVENTS, {b"n": node.encode(), b"o": DOWN, b"j": b"", b"r": b""},
                                  maxlen=keys.EVENTS_KEPT, approximate=True)
            # What was queued for its sessions first (to their accounts' other resources or offline
            # storage), so that by the time contacts see them go, nothing for them is left in flight.
            redelivered = 0 if own else await drain(self.redis, node, self.delivery)
            ended = 0
            for jid_bytes, data in records.items():
                try:
                    jid = JID.parse(jid_bytes.decode())
                    record = SessionRecord.decode(data)
                except (ValueError, KeyError, JIDError):
                    continue
                host = self.hosts.get(jid.domain)
                if host is None or self.sessions.get(jid) is not None:
                    continue  # bound again meanwhile (the client reconnected): nothing ended for its contacts
                session = RemoteSession(jid, node, self.outbox)
                session.update(record)
                await self.session_ended(host, session)
                ended += 1
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.sessions(node))
                if not own:
                    pipe.hdel(keys.NODES, node)
                await pipe.execute()
            log.warning("cluster: node %s is gone: %d sessions ended, %d queued stanzas redelivered", node,
                        ended, redelivered)
        finally:
            await self.redis.delete(keys.reaping(node))

    async def stop(self) -> None:
        """Leave: this node's sessions have ended (the server closed them); deliver what is still queued
        for it elsewhere and take it off the registry."""
        for leave in self.leaving:  # the rooms this node runs are handed on (cluster/rooms.py)
            await leave()
        for stop in self._stops:
            stop()
        await self.outbox.close()
        try:
            async with asyncio.timeout(5):
                while not self.registry._writes.empty():
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pass
        self.changes.link = None
        self.registry.running = self.inbox.running = self.bus.running = False
        for task in self._running:
            task.cancel()
        # A cancel that lands inside redis-py can come out as a connection error the loop retries
        # after; the flag above ends it then. Never wait on them for long.
        _done, pending = await asyncio.wait(self._running, timeout=RETRY * 4)
        for task in pending:
            task.cancel()
        self.sessions.link = None
        try:
            await self.redis.set(keys.closed(self.name), self.name, px=self._expiry_ms * 60)
            await drain(self.redis, self.name, self.delivery)
            await self.outbox.close()  # what the draining handed to sessions on other nodes
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.sessions(self.name), keys.alive(self.name))
                pipe.hdel(keys.NODES, self.name)
                pipe.xadd(keys.EVENTS, {b"n": self.name.encode(), b"o": DOWN, b"j": b"", b"r": b""},
                          maxlen=keys.EVENTS_KEPT, approximate=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("cluster: leaving the registry failed (%s); the others will see this node expire", exc)
        await self.redis.aclose()


async def shared_secret(redis: Redis, name: str) -> bytes:
    await redis.set(keys.secret(name), os.urandom(32), nx=True)
    value = await redis.get(keys.secret(name))
    if value is None or len(value) != 32:
        raise RuntimeError(f"the cluster's {name} secret in Redis is missing or damaged")
    return bytes(value)


async def cluster_status(redis: Redis) -> list[NodeStatus]:
    """Every registered node, alive or not, with its session count (for the CLI, console and API)."""
    out = []
    for name_bytes, facts_bytes in sorted((await redis.hgetall(keys.NODES)).items()):
        name = name_bytes.decode()
        try:
            facts = json.loads(facts_bytes)
        except ValueError:
            facts = {}
        beat = await redis.get(keys.alive(name))
        out.append(NodeStatus(
            name=name, alive=beat is not None, sessions=int(await redis.hlen(keys.sessions(name))),
            started=float(facts.get("started", 0)), pid=int(facts.get("pid", 0)), version=str(facts.get("version", "")),
            seconds_since_heartbeat=max(0.0, time.time() - float(beat)) if beat is not None else None,
        ))
    return out
