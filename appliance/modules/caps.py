"""Entity capabilities (XEP-0115): what each client supports, learned from its presence, and the
server's own capabilities in stream features.

A client's <c/> names a hash of its disco#info; unknown hashes are looked up once with a disco#info
query to that client, checked, and cached per hash. Remote contacts' resources are learned the same way
from the presence they send to local accounts, so PEP notifies them too. Other modules ask `Capabilities` whether a
resource wants notifications for a PEP node (NODE+notify) and hear when a resource's caps become known.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from appliance.core import events
from appliance.core.api import Bool, Duration, Int, Module, ModuleContext, Xep, option
from appliance.core.events import SessionEvent, StanzaEvent
from appliance.modules.disco import DiscoInfoNodes
from appliance.util.lru import LruDict
from appliance.xmpp import caps
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_CAPS, NS_CLIENT, NS_DISCO_INFO

SERVER_NODE = "https://parlour.chat/caps"
IQ = f"{{{NS_CLIENT}}}iq"

CapsListener = Callable[[Any], Awaitable[None]]  # gets the session whose caps became known
RemoteCapsListener = Callable[[JID, JID], Awaitable[None]]  # (local account, remote resource it heard)


class Capabilities:
    """Features of online resources, by full JID, and listeners for newly known caps."""

    def __init__(self, cache_size: int) -> None:
        self._cache: LruDict[str, frozenset[str]] = LruDict(cache_size)  # ver → features
        self._by_jid: dict[str, str] = {}  # full JID → ver
        self._remote: dict[str, set[str]] = {}  # bare JID of a remote contact → its full JIDs with caps
        self._heard: dict[str, dict[str, str]] = {}  # remote full JID → local account → ver it was heard with
        # full JID of a session another node of a cluster holds → the PEP nodes it wants (that node learnt them)
        self._mirrored: dict[str, frozenset[str]] = {}
        self._notify: LruDict[str, tuple[str, ...]] = LruDict(cache_size)  # ver → its NODE+notify, for the above
        self.listeners: list[CapsListener] = []
        self.remote_listeners: list[RemoteCapsListener] = []

    def features(self, jid: JID) -> frozenset[str]:
        ver = self._by_jid.get(str(jid))
        found = self._cache.get(ver) if ver is not None else None
        return found if found is not None else frozenset()

    def wants(self, jid: JID, node: str) -> bool:
        """The resource asked for notifications of PEP node `node` (XEP-0163 §4: NODE+notify)."""
        key = str(jid)
        if key not in self._by_jid and key in self._mirrored:
            return node in self._mirrored[key]
        return f"{node}+notify" in self.features(jid)

    def notify_nodes(self, jid: JID) -> tuple[str, ...]:
        """The PEP nodes the resource asked notifications for, in order (what a cluster shares of its caps;
        asked after every stanza of a clustered session, so computed once per caps hash)."""
        ver = self._by_jid.get(str(jid))
        if ver is None:
            return ()
        nodes = self._notify.get(ver)
        if nodes is None:
            nodes = tuple(sorted(f[:-7] for f in self.features(jid) if f.endswith("+notify")))
            if nodes or self._cache.get(ver) is not None:  # not while the features are still unknown
                self._notify.put(ver, nodes)
        return nodes

    def mirror(self, jid: JID, nodes: tuple[str, ...]) -> None:
        """Record (or with no nodes forget) what a session held by another node of the cluster wants."""
        if nodes:
            self._mirrored[str(jid)] = frozenset(nodes)
        else:
            self._mirrored.pop(str(jid), None)

    def known(self, ver: str) -> frozenset[str] | None:
        return self._cache.get(ver)

    def learn(self, ver: str, features: frozenset[str]) -> None:
        self._cache.put(ver, features)

    def remote_wanting(self, contact: JID, node: str) -> list[JID]:
        """The available resources of remote `contact` whose caps ask for PEP node `node`."""
        return [JID.parse(full) for full in self._remote.get(str(contact.bare()), ()) if
                self.wants(JID.parse(full), node)]

    def assign_remote(self, jid: JID, ver: str | None) -> bool:
        """Record (or with None forget) the caps of a remote contact's resource, from its presence; True
        when they changed."""
        changed = self.assign(jid, ver)
        if ver is None:
            self._heard.pop(str(jid), None)
        self._index_remote(jid, ver is not None)
        return changed

    def mirror_remote(self, jid: JID, nodes: tuple[str, ...]) -> None:
        """What a remote contact's resource wants, as another node of the cluster heard it (no nodes: it
        went unavailable or wants nothing)."""
        self.mirror(jid, nodes)
        self._index_remote(jid, bool(nodes))

    def _index_remote(self, jid: JID, known: bool) -> None:
        bare, full = str(jid.bare()), str(jid)
        if known:
            self._remote.setdefault(bare, set()).add(full)
        elif bare in self._remote and full not in self._by_jid and full not in self._mirrored:
            self._remote[bare].discard(full)
            if not self._remote[bare]:
                del self._remote[bare]

    def first_heard(self, account: JID, jid: JID) -> bool:
        """True the first time local `account` hears remote `jid` with its current caps (until it goes
        unavailable or changes them): when the last PEP items are due to it."""
        ver = self._by_jid.get(str(jid))
        heard = self._heard.setdefault(str(jid), {})
        if ver is None or heard.get(str(account)) == ver:
            return False
        heard[str(account)] = ver
        return True

    def assign(self, jid: JID, ver: str | None) -> bool:
        """Record the caps of a resource; True when they changed."""
        key = str(jid)
        if ver is None:
            return self._by_jid.pop(key, None) is not None
        changed = self._by_jid.get(key) != ver
        self._by_jid[key] = ver
        return changed


@dataclass(frozen=True, slots=True)
class CapsOptions:
    """Entity capabilities (XEP-0115): PEP notifications go to the clients that ask for them; the server announces its
    own capabilities."""

    verify: bool = option(True, Bool(),
        "Check a client's capability hash against its service discovery answer before trusting it.")
    cache_size: int = option(10_000, Int(10, 10_000_000), "Distinct capability sets remembered.")
    query_timeout: float = option(10.0, Duration(1, 300), "Time a client has to answer the capabilities query.")


class EntityCapabilities(Module):
    """Tracks clients' caps from their presence and announces the server's caps."""

    name = "caps"
    options = CapsOptions
    implements = (Xep(115, "1.6.0"),)
    depends = ("disco",)

    ctx: ModuleContext

    def setup(self, ctx: ModuleContext[CapsOptions]) -> None:
        self.ctx = ctx
        opts = ctx.options
        self.verify: bool = opts.verify
        self.timeout: float = opts.query_timeout
        self.caps = Capabilities(opts.cache_size)
        self.pending: dict[str, asyncio.Future[frozenset[str] | None]] = {}
        ctx.provide(Capabilities, self.caps)
        ctx.feature(NS_CAPS)
        ctx.stream_feature(self.server_caps)
        self.info_nodes = ctx.require(DiscoInfoNodes)
        self._server_node: str | None = None
        self._ver_key: tuple[object, ...] = ()
        self._ver = ""
        ctx.hook(events.PRESENCE_OUTGOING, self.on_presence, events.TRANSFORM)
        # a remote contact's presence to a local account: PEP notifies it too (XEP-0163 §4.3.1)
        ctx.hook(events.PRESENCE_BARE, self.on_remote_presence, events.TRANSFORM)
        ctx.hook(events.SESSION_CLOSED, self.on_closed)
        ctx.on_shared_change("remote-caps", self.on_remote_caps_elsewhere)

    async def stop(self) -> None:
        if self._server_node is not None:
            self.info_nodes.discard(self._server_node)

    # -- the server's own caps ------------------------------------------------------------------

    def server_ver(self) -> str:
        """The hash of the server's disco#info, recomputed only when what goes into it changed."""
        identities = tuple((i.category, i.type, "", i.name) for i in self.ctx.identities)
        forms = [form for form in (p() for p in self.ctx.extensions) if form is not None]
        key = (identities, frozenset(self.ctx.features), tuple(etree.tostring(form) for form in forms))
        if key != self._ver_key:
            self._ver = caps.ver(caps.verification_string(identities, key[1], forms))
            self._ver_key = key
        return self._ver

    def server_caps(self, _session: object) -> etree._Element:
        ver = self.server_ver()
        node = f"{SERVER_NODE}#{ver}"
        if node != self._server_node:
            if self._server_node is not None:
                self.info_nodes.discard(self._server_node)
            self.info_nodes.add(node)
            self._server_node = node
        return caps.element(SERVER_NODE, ver)

    # -- clients' caps --------------------------------------------------------------------------

    async def on_presence(self, event: StanzaEvent) -> None:
        session = event.session
        if session is None or event.to_jid is not None:
            return  # only broadcast presence describes the client
        if event.stanza.get("type") == "unavailable":
            self.caps.assign(session.jid, None)
            return
        if event.stanza.get("type") is not None:
            return
        c = event.stanza.find(caps.C)
        if c is None or not c.get("ver") or not c.get("node"):
            if self.caps.assign(session.jid, None):
                await self._announce(session)
            return
        ver, node, algo = c.get("ver", ""), c.get("node", ""), c.get("hash")
        if not session.client:  # clients without SASL2's user-agent name themselves by their caps node
            session.client = node[:100]
        key = ver if algo else f"{node}#{ver}"  # legacy caps (no hash) are only valid per node
        if self.caps.known(key) is not None:
            if self.caps.assign(session.jid, key):
                await self._announce(session)
            return
        self.ctx.spawn(self._discover(session, node, ver, algo, key), f"discover-{session.jid}")

    async def on_remote_presence(self, event: StanzaEvent) -> None:
        sender = event.from_jid
        if sender is None or sender.resource is None or self.ctx.is_local(sender.domain):
            return  # local resources are known from their own outgoing presence
        ptype = event.stanza.get("type")
        c = event.stanza.find(caps.C)
        if ptype == "unavailable" or (ptype is None and (c is None or not c.get("ver") or not c.get("node"))):
            if self.caps.assign_remote(sender, None):
                await self._share_remote(sender)
            return
        if ptype is not None or c is None:
            return
        ver, node, algo = c.get("ver", ""), c.get("node", ""), c.get("hash")
        key = ver if algo else f"{node}#{ver}"
        account = event.to_jid.bare()
        if self.caps.known(key) is not None:
            if self.caps.assign_remote(sender, key):
                await self._share_remote(sender)
            await self._announce_remote(account, sender)
            return
        self.ctx.spawn(self._discover_remote(account, sender, node, ver, algo, key), f"discover-{sender}")

    async def _discover_remote(self, account: JID, jid: JID, node: str, ver: str, algo: str | None,
                               key: str) -> None:
        if await self._features(jid, node, ver, algo, key) is not None:
            if self.caps.assign_remote(jid, key):
                await self._share_remote(jid)
            await self._announce_remote(account, jid)

    async def _share_remote(self, jid: JID) -> None:
        """In a cluster, a remote contact's presence reaches the node its server's link reached: tell the
        other nodes what it wants, so their publishers notify it too."""
        await self.ctx.shared_changed("remote-caps", str(jid), "\n".join(self.caps.notify_nodes(jid)).encode())

    async def on_remote_caps_elsewhere(self, full: str | None, data: bytes) -> None:
        if full is None:
            return  # nothing was stored: what was heard before stays until the contact's next presence
        try:
            jid = JID.parse(full)
        except ValueError:
            return
        self.caps.mirror_remote(jid, tuple(data.decode().split("\n")) if data else ())

    async def _announce_remote(self, account: JID, jid: JID) -> None:
        if not self.caps.first_heard(account, jid):
            return  # a status change, not news: the last items went out already
        for listener in list(self.caps.remote_listeners):
            try:
                await listener(account, jid)
            except Exception:
                self.ctx.log.exception("a remote capabilities listener failed")

    async def _features(self, jid: JID, node: str, ver: str, algo: str | None, key: str) -> frozenset[str] | None:
        """The features behind caps `key`: asked of `jid` once (concurrent askers share the answer), cached."""
        waiting = self.pending.get(key)
        if waiting is None:
            waiting = asyncio.get_running_loop().create_future()
            self.pending[key] = waiting
            try:
                waiting.set_result(await self._query(jid, node, ver, algo))
            finally:
                self.pending.pop(key, None)
        features = await waiting
        if features is not None:
            self.caps.learn(key, features)
        return features

    async def _discover(self, session: Any, node: str, ver: str, algo: str | None, key: str) -> None:
        if await self._features(session.jid, node, ver, algo, key) is None:
            return
        current = self.ctx.sessions.get(session.jid)
        if current is session and session.available and self.caps.assign(session.jid, key):
            await self._announce(session)

    async def _query(self, jid: JID, node: str, ver: str, algo: str | None) -> frozenset[str] | None:
        iq = etree.Element(IQ, nsmap={None: NS_CLIENT})
        iq.set("type", "get")
        iq.set("from", self.ctx.host)
        iq.set("to", str(jid))
        iq.set("id", f"caps-{secrets.token_hex(6)}")
        etree.SubElement(iq, f"{{{NS_DISCO_INFO}}}query", node=f"{node}#{ver}", nsmap={None: NS_DISCO_INFO})
        try:
            answer = await self.ctx.send_iq(iq, timeout=self.timeout)
        except TimeoutError:
            self.ctx.log.info("%s did not answer the capabilities query", jid)
            return None
        query = answer.find(f"{{{NS_DISCO_INFO}}}query")
        if answer.get("type") != "result" or query is None:
            return None
        if self.verify and algo in caps.HASHES and caps.of_disco_info(query, algo) != ver:
            self.ctx.log.warning("%s announced capabilities hash %s that does not match its features", jid, ver)
            return None
        return caps.features_of(query)

    async def _announce(self, session: Any) -> None:
        for listener in list(self.caps.listeners):
            try:
                await listener(session)
            except Exception:
                self.ctx.log.exception("a capabilities listener failed")

    async def on_closed(self, event: SessionEvent) -> None:
        self.caps.assign(event.session.jid, None)


__all__ = ["Capabilities", "EntityCapabilities"]
