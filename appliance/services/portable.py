"""XEP-0227 export and import of whole accounts: moving users from Prosody, ejabberd or another Parlour.

An import reads a file, or a folder of them (Prosody writes one `user@host.xml` per user; ejabberd one main
file that XIncludes a file per host), and adds each user in one transaction: the account with its SCRAM
credentials (or keys derived from a cleartext password), roster, pending subscription requests, vCard,
private XML, offline messages, PEP nodes and items, and message archive. It only adds: what an account
holds already is kept, so importing the same file twice changes nothing the second time. The report says,
per user, what was added and what was left out, and why.

An export writes every account of the chosen hosts the same way, into one file readable by its owner only
(it holds credentials).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from appliance.core.accounts import derive_all
from appliance.services.errors import ServiceError
from appliance.storage.api import (
    AccountStore,
    AccountTransfer,
    ImportCounts,
    OfflineMessage,
    PortableAccount,
    PortableMessage,
    PortableNode,
    PubSubItem,
    RosterItem,
    ScramKeys,
)
from appliance.util.timestamps import format_datetime, parse_datetime
from appliance.xmpp import pie
from appliance.xmpp.jid import JID, JIDError
from appliance.xmpp.ns import NS_CLIENT, NS_PUBSUB

log = logging.getLogger(__name__)

# Where the modules keep these documents in the key-value store (modules/vcard.py, private.py and
# presence.py; tests/services/test_portable.py holds them to the same values).
VCARD = ("vcard", "current")
PRIVATE = "private"
PENDING = "subscription-requests"
STORES = (VCARD[0], PRIVATE, PENDING)
PRIVATE_QUERY = "{jabber:iq:private}query"
PAGE = 500
LABELS = {"roster": "contacts", "documents": "documents (vCard, private XML, subscription requests)",
          "offline": "offline messages", "pep_nodes": "PEP nodes", "pep_items": "PEP items",
          "archive": "archived messages"}

# pubsub#node_config fields Parlour keeps (modules/pubsub/config.py NodeConfig) and how each is typed.
_BOOLEAN = ("persist_items", "deliver_notifications", "deliver_payloads", "notify_config", "notify_delete",
            "notify_retract")
_TEXT = ("title", "description", "type", "access_model", "publish_model", "send_last_published_item",
         "notification_type")
_LIST = ("roster_groups_allowed",)


class PortableError(ServiceError):
    """The input cannot be read at all (no such file, not XEP-0227), or the export cannot be made."""


@dataclass(slots=True)
class UserOutcome:
    """What happened to one user of the file."""

    jid: str
    status: str  # created, merged (the account existed), skipped or failed
    counts: ImportCounts = field(default_factory=ImportCounts)
    notes: list[str] = field(default_factory=list)  # what was left out and why


@dataclass(slots=True)
class ImportReport:
    """Per-user outcomes of an import, with totals."""

    users: list[UserOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about the input as a whole

    def count(self, status: str) -> int:
        return sum(1 for u in self.users if u.status == status)

    def total(self, name: str) -> int:
        return sum(int(getattr(u.counts, name)) for u in self.users)

    def lines(self) -> Iterator[str]:
        """The report as text, one user a line, then the totals."""
        yield from self.notes
        for user in self.users:
            counts = ", ".join(f"{getattr(user.counts, name)} {label}"
                               for name, label in LABELS.items() if getattr(user.counts, name))
            yield f"{user.jid}: {user.status}" + (f" ({counts})" if counts else "")
            for note in user.notes:
                yield f"    {note}"
        totals = ", ".join(f"{self.total(name)} {label}" for name, label in LABELS.items())
        yield (f"{self.count('created')} accounts created, {self.count('merged')} existing accounts completed, "
               f"{self.count('skipped')} skipped, {self.count('failed')} failed; added {totals}")


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: Path
    users: int
    hosts: tuple[str, ...]


class PortableData:
    """XEP-0227 import and export over the storage API, for the hosts this installation serves."""

    def __init__(self, accounts: AccountStore, transfer: AccountTransfer, hosts: tuple[str, ...], *,
                 iterations: int) -> None:
        self.accounts = accounts
        self.transfer = transfer
        self.hosts = hosts
        self.iterations = iterations

    # -- import -----------------------------------------------------------------------------------

    async def import_path(self, source: Path) -> ImportReport:
        """Import the file or folder `source`; raises `PortableError` when nothing in it can be read."""
        report = ImportReport()
        documents = _documents(source)
        if not documents:
            raise PortableError(f"{source}: no XEP-0227 file (*.xml with <server-data> or <host>) found")
        for path in documents:
            try:
                users = list(pie.read_users(path.name, path.read_bytes(), _loader(path.parent)))
            except (pie.PieError, OSError) as exc:
                report.notes.append(f"{path}: not imported: {exc}")
                continue
            for host, user in users:
                report.users.append(await self._import_user(host, user))
        if not report.users and report.notes:
            raise PortableError("; ".join(report.notes))
        return report

    async def _import_user(self, host: str, user: pie.UserData) -> UserOutcome:
        try:
            jid = JID.make(user.name, host)
        except (JIDError, ValueError):
            return UserOutcome(f"{user.name}@{host}", "skipped", notes=["not a valid account address"])
        outcome = UserOutcome(str(jid), "skipped", notes=list(user.unknown))
        if jid.domain not in self.hosts:
            outcome.notes.append(f"{jid.domain} is not a host of this server: add it to parlour.toml first")
            return outcome
        keys = await self._keys(user, outcome)
        account = PortableAccount(
            keys=tuple(keys), roster=tuple(_roster(jid, user, outcome)), documents=tuple(_documents_of(user)),
            offline=tuple(_offline(user)), pep=tuple(_pep(jid, user)), archive=tuple(_archive(jid, user, outcome)),
        )
        username = jid.local or ""
        if not keys and not await self.accounts.exists(jid.domain, username):
            outcome.notes.append("no password or SCRAM credentials: nobody could log in to it, so it was not created")
            return outcome
        try:
            outcome.counts = await self.transfer.import_account(jid.domain, username, account)
        except Exception as exc:  # the user's transaction rolled back; the others go on
            log.warning("importing %s failed: %s", jid, exc)
            outcome.status = "failed"
            outcome.notes.append(f"nothing of this user was imported: {exc}")
            return outcome
        outcome.status = "created" if outcome.counts.created else "merged"
        if not outcome.counts.created and keys:
            outcome.notes.append("the account existed: its current password was kept")
        elif outcome.counts.created and not any(k.hash_name == "SHA-256" for k in keys):
            names = ", ".join(f"SCRAM-{k.hash_name}" for k in keys)
            outcome.notes.append(f"password kept as {names} only: clients log in with it, or with PLAIN over TLS, "
                                 "which adds the other hashes at the first login")
        return outcome

    async def _keys(self, user: pie.UserData, outcome: UserOutcome) -> list[ScramKeys]:
        if user.password is not None:  # a cleartext export (plain storage): every hash, fresh salts
            try:
                return await asyncio.to_thread(derive_all, user.password, self.iterations)
            except ValueError as exc:
                outcome.notes.append(f"the password is not usable ({exc})")
        return [ScramKeys(c.hash_name, c.salt, c.iterations, c.stored_key, c.server_key) for c in user.credentials]

    # -- export -----------------------------------------------------------------------------------

    async def export(self, output: Path, hosts: tuple[str, ...] | None = None) -> ExportSummary:
        """Write every account of `hosts` (default: all) to `output`, atomically and readable by its owner only."""
        chosen = hosts or self.hosts
        unknown = [h for h in chosen if h not in self.hosts]
        if unknown:
            raise PortableError(f"not a host of this server: {', '.join(unknown)}")
        partial = output.with_name(f".{output.name}.partial")
        output.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        count = 0
        try:
            with os.fdopen(fd, "wb") as out:  # one user at a time: an export never holds them all
                out.write(pie.HEAD)
                for host in chosen:
                    out.write(pie.host_start(host))
                    async for user in self._users(host):
                        await asyncio.to_thread(out.write, pie.user_bytes(user))
                        count += 1
                    out.write(pie.HOST_END)
                out.write(pie.TAIL)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, output)
        return ExportSummary(output, count, tuple(chosen))

    async def _users(self, host: str) -> AsyncIterator[pie.UserData]:
        offset = 0
        while page := await self.accounts.list_users(host, limit=PAGE, offset=offset):
            offset += len(page)
            for username in page:
                account = await self.transfer.export_account(host, username, stores=STORES)
                if account is not None:
                    yield _user_data(username, account)


# -- reading files ----------------------------------------------------------------------------------


def _documents(source: Path) -> list[Path]:
    """A file, or the XEP-0227 documents of a folder: files whose root is <server-data> (XIncluded host
    files are read through the file that includes them)."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise PortableError(f"{source}: no such file or folder")
    return [path for path in sorted(source.glob("*.xml")) if _root_name(path) == "server-data"]


def _root_name(path: Path) -> str:
    try:
        for _event, el in etree.iterparse(str(path), events=("start",), resolve_entities=False, no_network=True):
            return etree.QName(el).localname
    except (etree.XMLSyntaxError, OSError):
        return ""
    return ""


def _loader(base: Path) -> pie.Loader:
    """Reads XIncluded files from the including file's folder, and from nowhere else."""

    def load(href: str) -> bytes:
        target = (base / href).resolve()
        if base.resolve() not in target.parents:
            raise pie.PieError(f"XInclude {href!r} points outside {base}")
        try:
            return target.read_bytes()
        except OSError as exc:
            raise pie.PieError(f"XInclude {href!r}: {exc.strerror}") from None

    return load


# -- XEP-0227 data -> Parlour's records -------------------------------------------------------------


def _roster(owner: JID, user: pie.UserData, outcome: UserOutcome) -> Iterator[RosterItem]:
    for contact in user.roster:
        try:
            jid = JID.parse(contact.jid).bare()
        except JIDError:
            outcome.notes.append(f"roster item {contact.jid!r} is not a valid address")
            continue
        if jid != owner.bare():
            yield RosterItem(str(jid), contact.name, contact.subscription, contact.ask, False, contact.groups)


def _documents_of(user: pie.UserData) -> Iterator[tuple[str, str, bytes]]:
    if user.vcard is not None:
        yield (*VCARD, user.vcard)
    by_namespace: dict[str, list[bytes]] = {}
    for fragment in user.private:
        namespace = etree.QName(etree.fromstring(fragment)).namespace or ""
        by_namespace.setdefault(namespace, []).append(fragment)
    for namespace, fragments in by_namespace.items():
        if len(fragments) == 1:
            yield PRIVATE, namespace, fragments[0]
        else:  # several elements of one namespace: kept in a jabber:iq:private wrapper, as the module does
            query = etree.Element(PRIVATE_QUERY, nsmap={None: "jabber:iq:private"})
            query.extend(etree.fromstring(f) for f in fragments)
            yield PRIVATE, namespace, etree.tostring(query)
    for requester in user.pending:
        try:
            contact = str(JID.parse(requester).bare())
        except JIDError:
            continue
        presence = etree.Element(f"{{{NS_CLIENT}}}presence", nsmap={None: NS_CLIENT}, type="subscribe")
        presence.set("from", contact)
        yield PENDING, contact, etree.tostring(presence)


def _stamp(stanza: etree._Element) -> float | None:
    for delay in stanza.iter("{urn:xmpp:delay}delay"):
        try:
            return parse_datetime(delay.get("stamp", ""))
        except ValueError:
            return None
    return None


def _offline(user: pie.UserData) -> Iterator[OfflineMessage]:
    for stanza in user.offline:
        yield OfflineMessage(0, stanza, _stamp(etree.fromstring(stanza)) or 0.0)


def _pep(owner: JID, user: pie.UserData) -> Iterator[PortableNode]:
    for node in user.pep:
        publisher = str(owner.bare())
        items = tuple(PubSubItem(node.node, item_id, publisher, payload, 0.0) for item_id, payload in node.items)
        yield PortableNode(node.node, config_json(node.config), items)


def config_json(form: dict[str, tuple[str, ...]]) -> str:
    """The node configuration Parlour stores, from pubsub#node_config form values (others are dropped)."""
    config: dict[str, object] = {}
    for var, values in form.items():
        name = var.removeprefix("pubsub#")
        value = values[0] if values else ""
        if not value and name not in _LIST:  # Prosody writes every field, the unset ones empty
            continue
        if name in _TEXT:
            config[name] = value
        elif name in _BOOLEAN:
            config[name] = value in ("1", "true")
        elif name in _LIST:
            config[name] = list(values)
        elif name == "max_items":
            config[name] = int(value) if value.isdigit() and int(value) > 0 else None
    return json.dumps(config, sort_keys=True)


def config_form(config: str) -> dict[str, tuple[str, ...]]:
    """pubsub#node_config form values of a stored configuration (the reverse of `config_json`)."""
    form: dict[str, tuple[str, ...]] = {"FORM_TYPE": (f"{NS_PUBSUB}#node_config",)}
    for name, value in json.loads(config).items():
        if value is None:
            form[f"pubsub#{name}"] = ("max",)
        elif isinstance(value, bool):
            form[f"pubsub#{name}"] = ("1" if value else "0",)
        elif isinstance(value, list):
            form[f"pubsub#{name}"] = tuple(str(v) for v in value)
        else:
            form[f"pubsub#{name}"] = (str(value),)
    return form


def _archive(owner: JID, user: pie.UserData, outcome: UserOutcome) -> Iterator[PortableMessage]:
    me = str(owner.bare())
    for message in user.archive:
        try:
            stamp = parse_datetime(message.stamp)
            stanza = etree.fromstring(message.stanza)
            sender, recipient = JID.parse(stanza.get("from", me)), JID.parse(stanza.get("to", me))
        except (ValueError, JIDError, etree.XMLSyntaxError):
            outcome.notes.append("an archived message with a bad date or address was left out")
            continue
        other = recipient if str(sender.bare()) == me else sender
        # An export without ids gets one from the content, so a second import recognises it.
        archive_id = message.id or hashlib.sha256(message.stamp.encode() + message.stanza).hexdigest()[:24]
        yield PortableMessage(archive_id, str(other.bare()), other.resource or "", stamp, message.stanza)


# -- Parlour's records -> XEP-0227 data -------------------------------------------------------------


def _user_data(username: str, account: PortableAccount) -> pie.UserData:
    user = pie.UserData(name=username)
    user.credentials = [pie.Credentials(k.hash_name, k.salt, k.iterations, k.stored_key, k.server_key)
                        for k in account.keys]
    user.roster = [pie.Contact(i.contact, i.name, i.subscription, i.ask, i.groups) for i in account.roster]
    for store, key, value in account.documents:
        if (store, key) == VCARD:
            user.vcard = value
        elif store == PRIVATE:
            stored = etree.fromstring(value)
            user.private.extend(etree.tostring(f) for f in (stored if stored.tag == PRIVATE_QUERY else [stored]))
        elif store == PENDING:
            user.pending.append(key)
    user.offline = [m.stanza for m in account.offline]
    user.pep = [pie.PepNode(n.node, config_form(n.config), tuple((i.item_id, i.payload) for i in n.items))
                for n in account.pep]
    user.archive = [pie.Archived(m.archive_id, format_datetime(m.stamp), m.stanza) for m in account.archive]
    return user


__all__ = [
    "ExportSummary",
    "ImportReport",
    "PortableData",
    "PortableError",
    "UserOutcome",
    "config_form",
    "config_json",
]
