"""XEP-0227 (Portable Import/Export Format, "PIE"): read and write the user data of XMPP servers, sans IO.

A document is `<server-data xmlns='urn:xmpp:pie:0'>` holding `<host jid=…>` elements holding `<user name=…>`
elements, possibly split over files with XInclude (ejabberd writes one file per host; Prosody's
mod_storage_xep0227 one `<server-data>` per user). Beside what XEP-0227 names (roster, offline messages,
private XML, vCard, pending subscription requests) this reads and writes the extensions Prosody and ejabberd
use: SCRAM credentials (`urn:xmpp:pie:0#scram`), PEP nodes as pubsub `<configure/>` and `<items/>`, and
message archives (`urn:xmpp:pie:0#mam`). Whatever else a `<user>` holds is named in `UserData.unknown` so the
importer can report it. The caller reads files (`load`): this module only parses and serializes bytes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from lxml import etree

from appliance.xmpp import forms
from appliance.xmpp.ns import (
    NS_CLIENT,
    NS_DATA,
    NS_DELAY,
    NS_FORWARD,
    NS_MAM,
    NS_PRIVATE,
    NS_PUBSUB,
    NS_PUBSUB_OWNER,
    NS_ROSTER,
    NS_VCARD,
)

NS_PIE = "urn:xmpp:pie:0"
NS_PIE_OLD = "http://www.xmpp.org/extensions/xep-0227.html#ns"  # before version 1.0, still read
NS_PIE_SCRAM = f"{NS_PIE}#scram"
NS_PIE_MAM = f"{NS_PIE}#mam"
NS_XINCLUDE = "http://www.w3.org/2001/XInclude"
DIGEST_SIZES = {"SHA-1": 20, "SHA-256": 32, "SHA-512": 64}
MAX_INCLUDE_DEPTH = 4

Loader = Callable[[str], bytes]


class PieError(ValueError):
    """The document is not XEP-0227 data this reader understands (message names the file and why)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """SCRAM keys of one hash, as RFC 5802 stores them (never the password)."""

    hash_name: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


@dataclass(frozen=True, slots=True)
class Contact:
    """One roster item."""

    jid: str
    name: str | None = None
    subscription: str = "none"
    ask: bool = False
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PepNode:
    """A personal eventing node: its configuration (form field var → values) and items, oldest first."""

    node: str
    config: dict[str, tuple[str, ...]] = field(default_factory=dict)
    items: tuple[tuple[str, bytes], ...] = ()  # (item id, serialized payload or b"")


@dataclass(frozen=True, slots=True)
class Archived:
    """One archived message: its archive id, the XEP-0082 stamp as written, the message stanza."""

    id: str
    stamp: str
    stanza: bytes


@dataclass(slots=True)
class UserData:
    """Everything a `<user>` element holds that Parlour reads; `unknown` names the rest."""

    name: str
    password: str | None = None
    credentials: list[Credentials] = field(default_factory=list)
    roster: list[Contact] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # JIDs whose subscription request awaits an answer
    vcard: bytes | None = None
    private: list[bytes] = field(default_factory=list)  # each a serialized fragment, keyed by its namespace
    offline: list[bytes] = field(default_factory=list)
    pep: list[PepNode] = field(default_factory=list)
    archive: list[Archived] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # why some content was not read


def _parser() -> etree.XMLParser:
    # Input from an administrator, still: no entities expanded, nothing fetched, no DTD.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True,
                           remove_pis=True, huge_tree=True)


def _local(el: etree._Element) -> tuple[str | None, str]:
    qname = etree.QName(el)
    return qname.namespace, qname.localname


def _is_pie(el: etree._Element, name: str) -> bool:
    namespace, local = _local(el)
    return local == name and namespace in (NS_PIE, NS_PIE_OLD, None)


def read_users(name: str, data: bytes, load: Loader) -> Iterator[tuple[str, UserData]]:
    """(host, user) for every user of the document `data` (called `name` in errors), following XIncludes
    through `load(href)`."""
    yield from _walk(name, data, load, None, 0)


def _walk(name: str, data: bytes, load: Loader, host: str | None, depth: int) -> Iterator[tuple[str, UserData]]:
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise PieError(f"{name}: not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:  # entities would be expanded in attributes: none are accepted
        raise PieError(f"{name}: has a DOCTYPE; XEP-0227 data never needs one")
    yield from _element(name, root, load, host, depth)


def _element(name: str, el: etree._Element, load: Loader, host: str | None,
             depth: int) -> Iterator[tuple[str, UserData]]:
    if etree.QName(el).namespace == NS_XINCLUDE and etree.QName(el).localname == "include":
        href = el.get("href")
        if not href:
            raise PieError(f"{name}: an XInclude without href")
        if depth >= MAX_INCLUDE_DEPTH:
            raise PieError(f"{name}: XIncludes nested deeper than {MAX_INCLUDE_DEPTH}")
        yield from _walk(href, load(href), load, host, depth + 1)
    elif _is_pie(el, "server-data"):
        for child in el.iterchildren(etree.Element):
            yield from _element(name, child, load, host, depth)
    elif _is_pie(el, "host"):
        jid = el.get("jid")
        if not jid:
            raise PieError(f"{name}: a <host> without jid")
        for child in el.iterchildren(etree.Element):
            yield from _element(name, child, load, jid, depth)
    elif _is_pie(el, "user"):
        if host is None:
            raise PieError(f"{name}: a <user> outside any <host>")
        yield host, read_user(el)
    else:
        raise PieError(f"{name}: unexpected element <{etree.QName(el).localname}> (not XEP-0227 data)")


def read_user(el: etree._Element) -> UserData:
    """The data of one `<user>` element."""
    user = UserData(name=el.get("name") or "", password=el.get("password") or None)
    for child in el.iterchildren(etree.Element):
        namespace, local = _local(child)
        reader = _READERS.get((namespace, local))
        if reader is None and local == "offline-messages" and namespace in (NS_PIE, NS_PIE_OLD, None):
            reader = _offline
        if reader is None:
            user.unknown.append(f"<{local} xmlns='{namespace or ''}'> is not carried by Parlour's import")
        else:
            reader(user, child)
    return user


def _b64(text: str | None) -> bytes:
    return base64.b64decode((text or "").strip(), validate=True)


def _credentials(user: UserData, el: etree._Element) -> None:
    mechanism = el.get("mechanism", "")
    hash_name = mechanism.removeprefix("SCRAM-")
    if hash_name not in DIGEST_SIZES:
        user.unknown.append(f"credentials for {mechanism or 'an unnamed mechanism'} are not supported")
        return
    try:
        iterations = int(el.findtext(f"{{{NS_PIE_SCRAM}}}iter-count") or "")
        salt, stored, server = (_b64(el.findtext(f"{{{NS_PIE_SCRAM}}}{name}"))
                                for name in ("salt", "stored-key", "server-key"))
        size = DIGEST_SIZES[hash_name]
        if len(stored) != size and len(server) != size:
            # ejabberd (23.01 and later) keeps its keys and salt base64-encoded and encodes them once more
            # on export: the keys' length tells, and the salt was encoded the same way.
            salt, stored, server = (_b64(value.decode("ascii")) for value in (salt, stored, server))
        if len(stored) != size or len(server) != size or iterations < 1 or not salt:
            raise ValueError("wrong sizes")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        user.unknown.append(f"{mechanism} credentials are malformed")
        return
    user.credentials.append(Credentials(hash_name, salt, iterations, stored, server))


def _roster(user: UserData, el: etree._Element) -> None:
    for item in el.iterchildren(f"{{{NS_ROSTER}}}item"):
        jid = item.get("jid")
        if not jid:
            continue
        subscription = item.get("subscription", "none")
        if subscription == "remove":
            continue
        user.roster.append(Contact(
            jid=jid, name=item.get("name") or None,
            subscription=subscription if subscription in ("none", "to", "from", "both") else "none",
            ask=item.get("ask") == "subscribe",
            groups=tuple(g.text or "" for g in item.iterchildren(f"{{{NS_ROSTER}}}group") if g.text),
        ))


def _detached(el: etree._Element) -> bytes:
    """An element on its own, without the namespace declarations of the document around it."""
    copy = deepcopy(el)
    etree.cleanup_namespaces(copy)
    return etree.tostring(copy)


def _vcard(user: UserData, el: etree._Element) -> None:
    user.vcard = _detached(el)


def _private(user: UserData, el: etree._Element) -> None:
    user.private.extend(_detached(fragment) for fragment in el.iterchildren(etree.Element))


def _offline(user: UserData, el: etree._Element) -> None:
    for message in el.iterchildren(etree.Element):
        if etree.QName(message).localname == "message":
            user.offline.append(etree.tostring(_as_client(message)))


def _as_client(stanza: etree._Element, parent: etree._Element | None = None) -> etree._Element:
    """A copy of the stanza in jabber:client: exports write it with that namespace, or inherit PIE's."""
    if etree.QName(stanza).namespace not in (NS_PIE, NS_PIE_OLD, None):
        copy = deepcopy(stanza)
        copy.tail = None
        if parent is not None:
            parent.append(copy)
        return copy
    tag = f"{{{NS_CLIENT}}}{etree.QName(stanza).localname}"
    el = (etree.Element(tag, dict(stanza.attrib), nsmap={None: NS_CLIENT}) if parent is None
          else etree.SubElement(parent, tag, dict(stanza.attrib)))
    el.text = stanza.text
    for child in stanza.iterchildren(etree.Element):
        _as_client(child, el).tail = child.tail
    return el


def _presence(user: UserData, el: etree._Element) -> None:
    if el.get("type") == "subscribe" and el.get("from"):
        user.pending.append(el.get("from", ""))


def _pep_config(user: UserData, el: etree._Element) -> None:
    for configure in el.iterchildren(f"{{{NS_PUBSUB_OWNER}}}configure"):
        node = _pep_node(user, configure.get("node", ""))
        form = configure.find(f"{{{NS_DATA}}}x")
        if node is not None and form is not None:
            node.config.update(forms.values(form))


def _pep_items(user: UserData, el: etree._Element) -> None:
    for items in el.iterchildren(f"{{{NS_PUBSUB}}}items"):
        node = _pep_node(user, items.get("node", ""))
        if node is None:
            continue
        found = []
        for item in items.iterchildren(f"{{{NS_PUBSUB}}}item"):
            payload = next(item.iterchildren(etree.Element), None)
            found.append((item.get("id") or "current", b"" if payload is None else _detached(payload)))
        index = user.pep.index(node)
        user.pep[index] = PepNode(node.node, node.config, node.items + tuple(found))


def _pep_node(user: UserData, name: str) -> PepNode | None:
    if not name:
        return None
    for node in user.pep:
        if node.node == name:
            return node
    user.pep.append(PepNode(name))
    return user.pep[-1]


def _archive(user: UserData, el: etree._Element) -> None:
    for result in el.iterchildren(f"{{{NS_MAM}}}result"):
        forwarded = result.find(f"{{{NS_FORWARD}}}forwarded")
        message = None if forwarded is None else forwarded.find(f"{{{NS_CLIENT}}}message")
        delay = None if forwarded is None else forwarded.find(f"{{{NS_DELAY}}}delay")
        if message is None or delay is None or not delay.get("stamp"):
            user.unknown.append("an archived message without a message or a date")
            continue
        user.archive.append(Archived(result.get("id") or "", delay.get("stamp", ""), _detached(message)))


_READERS: dict[tuple[str | None, str], Callable[[UserData, etree._Element], None]] = {
    (NS_PIE_SCRAM, "scram-credentials"): _credentials,
    (NS_ROSTER, "query"): _roster,
    (NS_VCARD, "vCard"): _vcard,
    (NS_PRIVATE, "query"): _private,
    (NS_CLIENT, "presence"): _presence,
    (NS_PUBSUB_OWNER, "pubsub"): _pep_config,
    (NS_PUBSUB, "pubsub"): _pep_items,
    (NS_PIE_MAM, "archive"): _archive,
}


# --- writing ---------------------------------------------------------------------------------------


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        child.text = text
    return child


def user_element(user: UserData) -> etree._Element:
    """The `<user>` element for `user` (the reverse of `read_user`)."""
    el = etree.Element(f"{{{NS_PIE}}}user", nsmap={None: NS_PIE})
    el.set("name", user.name)
    if user.password is not None:
        el.set("password", user.password)
    for cred in user.credentials:
        scram = etree.SubElement(el, f"{{{NS_PIE_SCRAM}}}scram-credentials", nsmap={None: NS_PIE_SCRAM})
        scram.set("mechanism", f"SCRAM-{cred.hash_name}")
        _sub(scram, f"{{{NS_PIE_SCRAM}}}iter-count", str(cred.iterations))
        for name, value in (("salt", cred.salt), ("server-key", cred.server_key), ("stored-key", cred.stored_key)):
            _sub(scram, f"{{{NS_PIE_SCRAM}}}{name}", base64.b64encode(value).decode("ascii"))
    if user.roster:
        query = etree.SubElement(el, f"{{{NS_ROSTER}}}query", nsmap={None: NS_ROSTER})
        for contact in user.roster:
            item = _sub(query, f"{{{NS_ROSTER}}}item", jid=contact.jid, subscription=contact.subscription)
            if contact.name:
                item.set("name", contact.name)
            if contact.ask:
                item.set("ask", "subscribe")
            for group in contact.groups:
                _sub(item, f"{{{NS_ROSTER}}}group", group)
    for requester in user.pending:
        presence = etree.SubElement(el, f"{{{NS_CLIENT}}}presence", nsmap={None: NS_CLIENT})
        presence.set("from", requester)
        presence.set("type", "subscribe")
    if user.vcard is not None:
        el.append(etree.fromstring(user.vcard, _parser()))
    if user.private:
        query = etree.SubElement(el, f"{{{NS_PRIVATE}}}query", nsmap={None: NS_PRIVATE})
        for fragment in user.private:
            query.append(etree.fromstring(fragment, _parser()))
    if user.offline:
        box = etree.SubElement(el, f"{{{NS_PIE}}}offline-messages")
        for stanza in user.offline:
            box.append(etree.fromstring(stanza, _parser()))
    if user.pep:
        _write_pep(el, user.pep)
    if user.archive:
        archive = etree.SubElement(el, f"{{{NS_PIE_MAM}}}archive", nsmap={None: NS_PIE_MAM})
        for message in user.archive:
            result = etree.SubElement(archive, f"{{{NS_MAM}}}result", nsmap={None: NS_MAM})
            result.set("id", message.id)
            forwarded = etree.SubElement(result, f"{{{NS_FORWARD}}}forwarded", nsmap={None: NS_FORWARD})
            etree.SubElement(forwarded, f"{{{NS_DELAY}}}delay", nsmap={None: NS_DELAY}).set("stamp", message.stamp)
            forwarded.append(etree.fromstring(message.stanza, _parser()))
    return el


def _write_pep(el: etree._Element, nodes: list[PepNode]) -> None:
    owner = etree.SubElement(el, f"{{{NS_PUBSUB_OWNER}}}pubsub", nsmap={None: NS_PUBSUB_OWNER})
    for node in nodes:
        configure = _sub(owner, f"{{{NS_PUBSUB_OWNER}}}configure", node=node.node)
        fields = (forms.Field(var, "text-multi" if len(values) > 1 else "text-single", values)
                  for var, values in node.config.items() if var != "FORM_TYPE")
        form = forms.build(f"{NS_PUBSUB}#node_config", fields, type_="submit")
        configure.append(form)
    published = etree.SubElement(el, f"{{{NS_PUBSUB}}}pubsub", nsmap={None: NS_PUBSUB})
    for node in nodes:
        items = _sub(published, f"{{{NS_PUBSUB}}}items", node=node.node)
        for item_id, payload in node.items:
            item = _sub(items, f"{{{NS_PUBSUB}}}item", id=item_id)
            if payload:
                item.append(etree.fromstring(payload, _parser()))


HEAD = b"<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n"
TAIL = b"</server-data>\n"


def host_start(host: str) -> bytes:
    """Opens a `<host>` of the document; `HOST_END` closes it."""
    return f"<host jid={quoteattr(host)}>\n".encode()


HOST_END = b"</host>\n"


def user_bytes(user: UserData) -> bytes:
    """One `<user>` of the document, serialized."""
    return etree.tostring(user_element(user), encoding="utf-8") + b"\n"


def write_document(hosts: Iterable[tuple[str, Iterable[UserData]]]) -> Iterator[bytes]:
    """The whole document in chunks (one per user), so a writer never holds every user at once."""
    yield HEAD
    for host, users in hosts:
        yield host_start(host)
        for user in users:
            yield user_bytes(user)
        yield HOST_END
    yield TAIL


__all__ = ["HEAD", "HOST_END", "NS_PIE", "NS_PIE_MAM", "NS_PIE_SCRAM", "TAIL", "Archived", "Contact", "Credentials",
           "PepNode", "PieError", "UserData", "host_start", "read_user", "read_users", "user_bytes", "user_element",
           "write_document"]
