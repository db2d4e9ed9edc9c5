"""The Redis key names of a cluster, in one place (all under the `parlour:` prefix)."""

from __future__ import annotations

PREFIX = "parlour:"
NODES = PREFIX + "nodes"  # hash: node name -> JSON facts about it (started, pid, version)
EVENTS = PREFIX + "events"  # stream: session registry changes, read by every node
EVENTS_KEPT = 100_000  # approximate length the registry stream is trimmed to (a node that fell behind resyncs)
CHANGES = PREFIX + "changes"  # stream: changes to shared data the nodes cache (appliance/cluster/changes.py)
GROUP = "deliver"  # the consumer group of every node's inbox


def secret(name: str) -> str:
    """String: a random secret every node uses (the dialback key of XEP-0185)."""
    return f"{PREFIX}secret:{name}"


def alive(node: str) -> str:
    """String with an expiry, renewed by the node's heartbeat: gone means the node is dead."""
    return f"{PREFIX}alive:{node}"


def sessions(node: str) -> str:
    """Hash: full JID -> the record of a session the node holds."""
    return f"{PREFIX}sessions:{node}"


def inbox(node: str) -> str:
    """Stream: stanzas for the node's sessions, consumed by the node through the `deliver` group."""
    return f"{PREFIX}inbox:{node}"


def reaping(node: str) -> str:
    """Lock: the one node that ends a dead node's sessions and redelivers its inbox."""
    return f"{PREFIX}reaping:{node}"


def closed(node: str) -> str:
    """Marker that the node's inbox takes nothing more (it stopped, or others ended its sessions and emptied
    its inbox): writers deliver elsewhere instead; a node that finds it on itself was only cut off."""
    return f"{PREFIX}closed:{node}"


ROOMS = PREFIX + "rooms"  # hash: chat room JID -> the node that holds (or last held) its lease



def room(part: str, jid: str) -> str:
    """The keys of a chat room run by one node at a time (cluster/rooms.py): "lease" (string with an
    expiry: "node token"), "fence" (counter: the fencing token of its next lease), "occupants" (hash:
    real full JID -> nickname and last presence, kept by its owner for the next one)."""
    return f"{PREFIX}room-{part}:{jid}"
