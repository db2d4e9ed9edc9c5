"""Sessions held by other nodes, as this node's directory sees them, and the record they are shared as."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from lxml import etree

from appliance.xmpp.jid import JID

# Stanzas in records and queues come from our own nodes, but are parsed as strictly as a client's.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, PARSER)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """What other nodes need to know of a session to route to it (RFC 6121 delivery rules, carbons)."""

    available: bool = False
    priority: int = 0
    presence: bytes = b""  # the last broadcast available presence, serialized
    interested: bool = False  # requested the roster
    carbons: bool = False
    notify: tuple[str, ...] = ()  # the PEP nodes it wants notifications of (NODE+notify of its caps)

    def encode(self) -> bytes:
        return json.dumps({"a": self.available, "p": self.priority, "x": self.presence.decode(),
                           "i": self.interested, "c": self.carbons, "n": self.notify}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> SessionRecord:
        raw = json.loads(data)
        # "n" is absent from the records of nodes that predate it (a rolling upgrade)
        return cls(bool(raw["a"]), int(raw["p"]), str(raw["x"]).encode(), bool(raw["i"]), bool(raw["c"]),
                   tuple(str(node) for node in raw.get("n", ())))


class Courier(Protocol):
    """Carries what a remote session is sent to the node holding it (queues.Outbox)."""

    def post(self, node: str, jid: JID, kind: bytes, data: bytes) -> None: ...


STANZA = b"s"  # a serialized stanza for the session
ROUTE = b"r"  # a stanza for a chat room this node runs (the target is the room's JID): route it here
ROOM_ADMIN = b"a"  # an administrator's change to a chat room this node runs (JSON; cluster/rooms.py)
CLOSE = b"c"  # end the session: data is "condition\ntext\nnode" (node: where its successor is bound, or "")


class RemoteSession:
    """A session bound on node `node`: what it is sent goes into that node's queue."""

    __slots__ = ("__weakref__", "available", "carbons", "courier", "directed", "here", "interested", "jid", "node",
                 "notify", "presence", "priority")

    def __init__(self, jid: JID, node: str, courier: Courier, here: str = "") -> None:
        self.here = here  # this node: a session bound here in this one's place gets its unacknowledged stanzas
        self.jid = jid
        self.node = node
        self.courier = courier
        self.available = False
        self.priority = 0
        self.presence: etree._Element | None = None
        self.interested = False
        self.carbons = False
        self.notify: tuple[str, ...] = ()
        self.directed: set[JID] = set()  # kept by the holding node; empty here

    def __repr__(self) -> str:
        return f"<RemoteSession {self.jid} on {self.node}>"

    def update(self, record: SessionRecord) -> None:
        self.available = record.available
        self.priority = record.priority
        self.presence = parse(record.presence) if record.presence else None
        self.interested = record.interested
        self.carbons = record.carbons
        self.notify = record.notify

    def send(self, element: etree._Element) -> None:
        self.courier.post(self.node, self.jid, STANZA, etree.tostring(element))

    def send_bytes(self, data: bytes, element: etree._Element | None = None) -> None:
        self.courier.post(self.node, self.jid, STANZA, data)

    def close(self, condition: str | None = None, text: str | None = None) -> None:
        # "conflict": a login here took this full JID; its stanzas in flight follow it here
        successor = self.here if condition == "conflict" else ""
        self.courier.post(self.node, self.jid, CLOSE, f"{condition or ''}\n{text or ''}\n{successor}".encode())
