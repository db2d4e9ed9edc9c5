"""Whole accounts in and out (XEP-0227): one read snapshot per export, one transaction per import.

An import only adds: every row goes in with ON CONFLICT DO NOTHING (offline messages, which have no
natural key, are compared by their bytes), so importing the same file twice adds nothing the second time
and never overwrites what the account changed on Parlour in between. PEP nodes belong to the account's
bare JID as their service, and its archive to the same JID as owner.
"""

from __future__ import annotations

import json
import time

from appliance.storage.api import (
    ImportCounts,
    OfflineMessage,
    PortableAccount,
    PortableMessage,
    PortableNode,
    PubSubItem,
    RosterItem,
    ScramKeys,
    UnknownAccount,
)
from appliance.storage.engine import Connection
from appliance.storage.workers import Database

_USER = "host = ? AND username = ?"


def _added(conn: Connection, sql: str, params: tuple[object, ...]) -> int:
    conn.execute(sql, params)
    return 1 if conn.changes() > 0 else 0


def _create(conn: Connection, host: str, username: str, keys: tuple[ScramKeys, ...]) -> bool:
    """Create the account when absent; True when it was created."""
    if conn.execute(f"SELECT 1 FROM accounts WHERE {_USER}", (host, username)).fetchone() is not None:
        return False
    if not keys:
        raise UnknownAccount(f"{username}@{host} does not exist and the import carries no credentials for it")
    conn.execute("INSERT INTO accounts (host, username, created_at) VALUES (?, ?, ?)", (host, username, time.time()))
    conn.executemany(
        "INSERT INTO scram_keys (host, username, hash_name, salt, iterations, stored_key, server_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(host, username, k.hash_name, k.salt, k.iterations, k.stored_key, k.server_key) for k in keys],
    )
    return True


def _roster(conn: Connection, host: str, username: str, items: tuple[RosterItem, ...]) -> int:
    added = sum(_added(
        conn,
        "INSERT INTO roster_items (host, username, contact, name, subscription, ask, approved, group_names) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, username, contact) DO NOTHING",
        (host, username, i.contact, i.name, i.subscription, i.ask, i.approved,
         json.dumps(list(i.groups), ensure_ascii=False)),
    ) for i in items)
    if added:  # clients holding a cached roster must see it changed (XEP-0237)
        conn.execute(
            "INSERT INTO roster_versions (host, username, version) VALUES (?, ?, 1) "
            "ON CONFLICT (host, username) DO UPDATE SET version = roster_versions.version + 1",
            (host, username),
        )
    return added


def _offline(conn: Connection, host: str, username: str, messages: tuple[OfflineMessage, ...]) -> int:
    added = 0
    for message in messages:
        sql = f"SELECT 1 FROM offline_messages WHERE {_USER} AND stanza = ?"
        if conn.execute(sql, (host, username, message.stanza)).fetchone() is None:
            conn.execute(
                "INSERT INTO offline_messages (host, username, stanza, stored_at) VALUES (?, ?, ?, ?)",
                (host, username, message.stanza, message.stored_at),
            )
            added += 1
    return added


def _pep(conn: Connection, owner: str, nodes: tuple[PortableNode, ...]) -> tuple[int, int]:
    new_nodes = new_items = 0
    for node in nodes:
        new_nodes += _added(
            conn, "INSERT INTO pubsub_nodes (service, node, config, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (service, node) DO NOTHING", (owner, node.node, node.config, time.time()))
        conn.execute(
            "INSERT INTO pubsub_affiliations (service, node, jid, affiliation) VALUES (?, ?, ?, 'owner') "
            "ON CONFLICT (service, node, jid) DO NOTHING", (owner, node.node, owner))
        for item in node.items:
            new_items += _added(
                conn, "INSERT INTO pubsub_items (service, node, item_id, publisher, payload, published_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (service, node, item_id) DO NOTHING",
                (owner, node.node, item.item_id, item.publisher, item.payload, item.published_at))
    return new_nodes, new_items


def _archive(conn: Connection, owner: str, messages: tuple[PortableMessage, ...]) -> int:
    return sum(_added(
        conn, "INSERT INTO archive (owner, archive_id, with_jid, with_resource, stamp, stanza) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (owner, archive_id) DO NOTHING",
        (owner, m.archive_id, m.with_jid, m.with_resource, m.stamp, m.stanza),
    ) for m in sorted(messages, key=lambda m: m.stamp))


def _import(conn: Connection, host: str, username: str, account: PortableAccount) -> ImportCounts:
    owner = f"{username}@{host}"
    created = _create(conn, host, username, account.keys)
    documents = sum(_added(
        conn, "INSERT INTO kv (host, username, store, key_name, value, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (host, username, store, key_name) DO NOTHING",
        (host, username, store, key, value, time.time()),
    ) for store, key, value in account.documents)
    nodes, items = _pep(conn, owner, account.pep)
    return ImportCounts(
        created=created, roster=_roster(conn, host, username, account.roster), documents=documents,
        offline=_offline(conn, host, username, account.offline), pep_nodes=nodes, pep_items=items,
        archive=_archive(conn, owner, account.archive),
    )


def _export(conn: Connection, host: str, username: str, stores: tuple[str, ...]) -> PortableAccount | None:
    user = (host, username)
    if conn.execute(f"SELECT 1 FROM accounts WHERE {_USER}", user).fetchone() is None:
        return None
    owner = f"{username}@{host}"
    keys = tuple(
        ScramKeys(str(h), bytes(s), int(i), bytes(k), bytes(v)) for h, s, i, k, v in conn.execute(
            f"SELECT hash_name, salt, iterations, stored_key, server_key FROM scram_keys WHERE {_USER} "
            "ORDER BY hash_name", user))
    roster = tuple(
        RosterItem(str(c), None if n is None else str(n), str(s), bool(a), bool(p), tuple(json.loads(str(g))))
        for c, n, s, a, p, g in conn.execute(
            "SELECT contact, name, subscription, ask, approved, group_names FROM roster_items "
            f"WHERE {_USER} ORDER BY contact", user))
    documents = tuple(
        (str(store), str(key), bytes(value)) for store, key, value in conn.execute(
            f"SELECT store, key_name, value FROM kv WHERE {_USER} ORDER BY store, key_name", user)
        if store in stores)
    offline = tuple(OfflineMessage(int(i), bytes(s), float(t)) for i, s, t in conn.execute(
        f"SELECT id, stanza, stored_at FROM offline_messages WHERE {_USER} ORDER BY id", user))
    pep = tuple(
        PortableNode(str(node), str(config), tuple(
            PubSubItem(str(node), str(i), str(p), bytes(d), float(t)) for i, p, d, t in conn.execute(
                "SELECT item_id, publisher, payload, published_at FROM pubsub_items "
                "WHERE service = ? AND node = ? ORDER BY seq", (owner, node))))
        for node, config in conn.execute(
            "SELECT node, config FROM pubsub_nodes WHERE service = ? ORDER BY node", (owner,)).fetchall())
    archive = tuple(PortableMessage(str(a), str(w), str(r), float(t), bytes(s)) for a, w, r, t, s in conn.execute(
        "SELECT archive_id, with_jid, with_resource, stamp, stanza FROM archive WHERE owner = ? ORDER BY id", (owner,)))
    return PortableAccount(keys, roster, documents, offline, pep, archive)


class AccountTransfer:
    """``storage.api.AccountTransfer`` on a ``Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def export_account(self, host: str, username: str, *, stores: tuple[str, ...]) -> PortableAccount | None:
        return await self._db.read(lambda conn: _export(conn, host, username, stores))

    async def import_account(self, host: str, username: str, account: PortableAccount) -> ImportCounts:
        return await self._db.write(lambda conn: _import(conn, host, username, account))
