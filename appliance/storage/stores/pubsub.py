"""Publish-subscribe nodes, affiliations, subscriptions and items in SQL."""

from __future__ import annotations

import time

from appliance.storage.api import AlreadyExists, PubSubItem, PubSubNode, PubSubSubscription
from appliance.storage.engine import CONSTRAINT_ERRORS, Connection
from appliance.storage.workers import Database

_SUB_COLUMNS = "node, jid, subid, state, options"
_ITEM_COLUMNS = "node, item_id, publisher, payload, published_at"


def _node(row: tuple[object, ...]) -> PubSubNode:
    service, node, config, created_at = row
    return PubSubNode(str(service), str(node), str(config), float(created_at))  # type: ignore[arg-type]


def _sub(row: tuple[object, ...]) -> PubSubSubscription:
    node, jid, subid, state, options = row
    return PubSubSubscription(str(node), str(jid), str(subid), str(state), str(options))


def _item(row: tuple[object, ...]) -> PubSubItem:
    node, item_id, publisher, payload, published_at = row
    return PubSubItem(str(node), str(item_id), str(publisher), bytes(payload), float(published_at))  # type: ignore[arg-type]


_NO_LIMIT = 2**62


class PubSubStore:
    """``storage.api.PubSubStore`` on a ``Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- nodes ----------------------------------------------------------------------------------

    async def node(self, service: str, node: str) -> PubSubNode | None:
        def select(conn: Connection) -> PubSubNode | None:
            row = conn.execute(
                "SELECT service, node, config, created_at FROM pubsub_nodes WHERE service = ? AND node = ?",
                (service, node),
            ).fetchone()
            return None if row is None else _node(row)

        return await self._db.read(select)

    async def nodes(self, service: str) -> list[PubSubNode]:
        def select(conn: Connection) -> list[PubSubNode]:
            rows = conn.execute(
                "SELECT service, node, config, created_at FROM pubsub_nodes WHERE service = ? ORDER BY node",
                (service,),
            )
            return [_node(row) for row in rows]

        return await self._db.read(select)

    async def create_node(self, service: str, node: str, config: str, owner: str) -> None:
        now = time.time()

        def insert(conn: Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO pubsub_nodes (service, node, config, created_at) VALUES (?, ?, ?, ?)",
                    (service, node, config, now),
                )
            except CONSTRAINT_ERRORS as exc:
                raise AlreadyExists(f"node {node!r} exists on {service}") from exc
            conn.execute(
                "INSERT INTO pubsub_affiliations (service, node, jid, affiliation) VALUES (?, ?, ?, 'owner')",
                (service, node, owner),
            )

        await self._db.write(insert)

    async def configure_node(self, service: str, node: str, config: str) -> bool:
        def update(conn: Connection) -> bool:
            conn.execute(
                "UPDATE pubsub_nodes SET config = ? WHERE service = ? AND node = ?", (config, service, node)
            )
            return conn.changes() > 0

        return await self._db.write(update)

    async def delete_node(self, service: str, node: str) -> bool:
        def delete(conn: Connection) -> bool:
            conn.execute("DELETE FROM pubsub_nodes WHERE service = ? AND node = ?", (service, node))
            return conn.changes() > 0

        return await self._db.write(delete)

    async def delete_service(self, service: str) -> int:
        def delete(conn: Connection) -> int:
            conn.execute("DELETE FROM pubsub_nodes WHERE service = ?", (service,))
            return conn.changes()

        return await self._db.write(delete)

    # -- affiliations ---------------------------------------------------------------------------

    async def affiliations(self, service: str, node: str) -> dict[str, str]:
        def select(conn: Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT jid, affiliation FROM pubsub_affiliations WHERE service = ? AND node = ? ORDER BY jid",
                (service, node),
            )
            return {str(jid): str(aff) for jid, aff in rows}

        return await self._db.read(select)

    async def affiliations_of(self, service: str, jid: str) -> dict[str, str]:
        def select(conn: Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT node, affiliation FROM pubsub_affiliations WHERE service = ? AND jid = ? ORDER BY node",
                (service, jid),
            )
            return {str(node): str(aff) for node, aff in rows}

        return await self._db.read(select)

    async def set_affiliation(self, service: str, node: str, jid: str, affiliation: str) -> None:
        def upsert(conn: Connection) -> None:
            if affiliation == "none":
                conn.execute(
                    "DELETE FROM pubsub_affiliations WHERE service = ? AND node = ? AND jid = ?",
                    (service, node, jid),
                )
                return
            conn.execute(
                "INSERT INTO pubsub_affiliations (service, node, jid, affiliation) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (service, node, jid) DO UPDATE SET affiliation = excluded.affiliation",
                (service, node, jid, affiliation),
            )

        await self._db.write(upsert)

    # -- subscriptions --------------------------------------------------------------------------

    async def subscriptions(self, service: str, node: str) -> list[PubSubSubscription]:
        def select(conn: Connection) -> list[PubSubSubscription]:
            rows = conn.execute(
                f"SELECT {_SUB_COLUMNS} FROM pubsub_subscriptions WHERE service = ? AND node = ? ORDER BY jid",
                (service, node),
            )
            return [_sub(row) for row in rows]

        return await self._db.read(select)

    async def subscriptions_of(self, service: str, jid: str) -> list[PubSubSubscription]:
        def select(conn: Connection) -> list[PubSubSubscription]:
            rows = conn.execute(
                f"SELECT {_SUB_COLUMNS} FROM pubsub_subscriptions "
                "WHERE service = ? AND (jid = ? OR substr(jid, 1, ?) = ?) ORDER BY node, jid",
                (service, jid, len(jid) + 1, jid + "/"),
            )
            return [_sub(row) for row in rows]

        return await self._db.read(select)

    async def put_subscription(self, service: str, sub: PubSubSubscription) -> None:
        def upsert(conn: Connection) -> None:
            conn.execute(
                f"INSERT INTO pubsub_subscriptions (service, {_SUB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (service, node, jid) DO UPDATE SET subid = excluded.subid, "
                "state = excluded.state, options = excluded.options",
                (service, sub.node, sub.jid, sub.subid, sub.state, sub.options),
            )

        await self._db.write(upsert)

    async def delete_subscription(self, service: str, node: str, jid: str) -> bool:
        def delete(conn: Connection) -> bool:
            conn.execute(
                "DELETE FROM pubsub_subscriptions WHERE service = ? AND node = ? AND jid = ?",
                (service, node, jid),
            )
            return conn.changes() > 0

        return await self._db.write(delete)

    # -- items ----------------------------------------------------------------------------------

    async def put_item(self, service: str, item: PubSubItem, max_items: int) -> list[str]:
        def upsert(conn: Connection) -> list[str]:
            conn.execute(
                "DELETE FROM pubsub_items WHERE service = ? AND node = ? AND item_id = ?",
                (service, item.node, item.item_id),
            )
            conn.execute(
                f"INSERT INTO pubsub_items (service, {_ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (service, item.node, item.item_id, item.publisher, item.payload, item.published_at),
            )
            stale = [
                (int(seq), str(item_id))
                for seq, item_id in conn.execute(
                    "SELECT seq, item_id FROM pubsub_items WHERE service = ? AND node = ? "
                    "ORDER BY seq DESC LIMIT ? OFFSET ?",  # no shared spelling of "no limit"
                    (service, item.node, _NO_LIMIT, max_items),
                )
            ]
            for seq, _item_id in stale:
                conn.execute("DELETE FROM pubsub_items WHERE seq = ?", (seq,))
            return [item_id for _seq, item_id in stale]

        return await self._db.write(upsert)

    async def items(
        self, service: str, node: str, *, limit: int | None = None, ids: list[str] | None = None
    ) -> list[PubSubItem]:
        def select(conn: Connection) -> list[PubSubItem]:
            sql = f"SELECT {_ITEM_COLUMNS} FROM pubsub_items WHERE service = ? AND node = ?"
            args: list[object] = [service, node]
            if ids is not None:
                sql += f" AND item_id IN ({', '.join('?' for _ in ids)})"
                args.extend(ids)
            sql += " ORDER BY seq DESC"
            if limit is not None:
                sql += " LIMIT ?"
                args.append(limit)
            return [_item(row) for row in conn.execute(sql, args)]

        return await self._db.read(select)

    async def delete_item(self, service: str, node: str, item_id: str) -> bool:
        def delete(conn: Connection) -> bool:
            conn.execute(
                "DELETE FROM pubsub_items WHERE service = ? AND node = ? AND item_id = ?",
                (service, node, item_id),
            )
            return conn.changes() > 0

        return await self._db.write(delete)

    async def purge(self, service: str, node: str) -> int:
        def delete(conn: Connection) -> int:
            conn.execute("DELETE FROM pubsub_items WHERE service = ? AND node = ?", (service, node))
            return conn.changes()

        return await self._db.write(delete)
