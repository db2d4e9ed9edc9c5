"""A stanza's content namespace on the way over s2s (jabber:client inside, jabber:server on the wire), fast.

`s2s.retag` copies the tree node by node in Python; on a federation link that carries every stanza to a
domain it cost more than the rest of the s2s write path. Nearly every stanza serializes with its content
namespace declared once, as the default of its root (`<message xmlns="jabber:client" ...>`), its own
children inheriting it: then swapping that one declaration in the serialized bytes is the same retagging
(attribute values and text cannot hide the declaration: the name is counted over the whole serialization,
so a stanza that mentions it anywhere else, or declares it again below, takes `retag`'s slow path).
"""

from __future__ import annotations

from lxml import etree

from appliance.xmpp.ns import NS_CLIENT, NS_SERVER
from appliance.xmpp.s2s import retag

_CLIENT = NS_CLIENT.encode()
_SERVER = NS_SERVER.encode()
_CLIENT_DEFAULT = b'xmlns="' + _CLIENT + b'"'
_SERVER_DEFAULT = b'xmlns="' + _SERVER + b'"'
# For bytes lxml itself just wrote: no DTD, no entities, no network.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=False)


def _swapped(data: bytes, old_ns: bytes, old: bytes, new: bytes) -> bytes | None:
    """`data` with the root's default-namespace declaration `old` made `new`, if that is its only mention."""
    at = data.find(old)
    if at < 0 or at > data.find(b">") or data.count(old_ns) != 1:
        return None
    return data[:at] + new + data[at + len(old):]


def server_bytes(stanza: etree._Element) -> bytes:
    """A jabber:client stanza serialized in jabber:server, for an s2s stream."""
    data = etree.tostring(stanza)
    swapped = _swapped(data, _CLIENT, _CLIENT_DEFAULT, _SERVER_DEFAULT)
    return swapped if swapped is not None else etree.tostring(retag(stanza, NS_CLIENT, NS_SERVER))


def client_stanza(stanza: etree._Element) -> etree._Element:
    """A copy of a jabber:server stanza (read from an s2s stream) in jabber:client, for local routing."""
    swapped = _swapped(etree.tostring(stanza), _SERVER, _SERVER_DEFAULT, _CLIENT_DEFAULT)
    return etree.fromstring(swapped, _PARSER) if swapped is not None else retag(stanza, NS_SERVER, NS_CLIENT)


__all__ = ["client_stanza", "server_bytes"]
