"""The cluster node of a server with [cluster] enabled, wired to the core it serves (appliance/cluster)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis

from appliance.cluster.node import ClusterNode, NodeStatus, cluster_status, connect
from appliance.cluster.remote import RemoteSession
from appliance.cluster.rooms import RoomInUse, rooms_in_use
from appliance.config.model import ClusterConfig, Config
from appliance.core import events
from appliance.core.api import Host
from appliance.core.events import SessionEvent
from appliance.core.server import Unwire, XmppCore
from appliance.core.sessions import Session
from appliance.modules.caps import Capabilities
from appliance.modules.carbons import CarbonsService
from appliance.services.cluster import NodeReader, NodeView

T = TypeVar("T")


def join_cluster(config: Config, core: XmppCore) -> ClusterNode:
    """The node for `core` (not started): a dead node's sessions end through the hosts' modules, and
    carbons state and the PEP nodes a session wants (its caps' NODE+notify) travel with the session records."""
    hosts = core.hosts

    def carbons_of(session: Session) -> CarbonsService | None:
        host = hosts.get(session.jid.domain)
        return host.services.get(CarbonsService) if host is not None else None

    def carbons(session: Session) -> bool:
        service = carbons_of(session)
        return service is not None and service.enabled(session)

    def set_carbons(session: Session, on: bool) -> None:
        service = carbons_of(session)
        if service is not None:
            (service.enable if on else service.disable)(session)

    def caps_of(session: Session) -> Capabilities | None:
        host = hosts.get(session.jid.domain)
        return host.services.get(Capabilities) if host is not None else None

    def notify(session: Session) -> tuple[str, ...]:
        caps = caps_of(session)
        return caps.notify_nodes(session.jid) if caps is not None else ()

    def set_notify(session: Session, nodes: tuple[str, ...]) -> None:
        caps = caps_of(session)
        if caps is not None:
            caps.mirror(session.jid, nodes)

    async def session_ended(host: Host, session: RemoteSession) -> None:
        # A dead node's session: the same hooks as a local close (presence unavailable to contacts and
        # to the account's other resources, last activity, rooms left).
        await host.hooks.fire(events.SESSION_CLOSED, SessionEvent(session))  # type: ignore[arg-type]

    node = ClusterNode(config.cluster, sessions=core.sessions, router=core.router, hosts=hosts, tasks=core.tasks,
                       session_ended=session_ended, carbons=carbons, set_carbons=set_carbons, notify=notify,
                       set_notify=set_notify, changes=core.changes)

    async def caps_learnt(session: Session) -> None:
        # The caps of a session here became known after its presence was published (they are asked of the
        # client): publish its record again so the other nodes' PEP notifies it.
        node.registry.after_stanza(session)

    def listen_to_caps() -> Unwire:
        # On each caps module: a reload makes it anew, and this listens to the new one.
        heard = [caps for host in hosts.values() if (caps := host.services.get(Capabilities)) is not None]
        for caps in heard:
            caps.listeners.append(caps_learnt)

        async def unwire() -> None:
            for caps in heard:
                caps.listeners.remove(caps_learnt)

        return unwire

    core.wire_modules(listen_to_caps)
    return node


def node_reader(node: ClusterNode) -> NodeReader:
    """The console's and the API's view of every node, read through the running node's connection."""

    async def read() -> list[NodeView]:
        return [NodeView(n.name, n.alive, n.sessions, n.seconds_since_heartbeat, n.started, n.version,
                         n.name == node.name) for n in await cluster_status(node.redis)]

    return read


async def _read(config: ClusterConfig, read: Callable[[Redis], Awaitable[T]]) -> T:
    redis = connect(config.redis_url)
    try:
        return await read(redis)
    finally:
        await redis.aclose()


async def read_rooms(config: ClusterConfig) -> list[RoomInUse]:
    """Every room in use and the node running it (for `parlour cluster rooms`)."""
    return await _read(config, rooms_in_use)


async def read_status(config: ClusterConfig) -> list[NodeStatus]:
    """Every node registered in the cluster's Redis (for `parlour cluster status`)."""
    return await _read(config, cluster_status)


__all__ = ["ClusterNode", "NodeStatus", "RoomInUse", "join_cluster", "node_reader", "read_rooms", "read_status"]
