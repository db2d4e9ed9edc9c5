"""Message archives (XEP-0313) and archiving preferences (XEP-0441) in SQL."""

from __future__ import annotations

import json
from typing import Any

from appliance.storage.api import ArchivedMessage, ArchiveFilter, ArchivePage, ArchivePrefs, UnknownArchiveId
from appliance.storage.engine import Connection
from appliance.storage.workers import Database

_COLUMNS = "id, archive_id, with_jid, stamp, stanza"


def _row_id(conn: Connection, owner: str, archive_id: str) -> int:
    row = conn.execute(
        "SELECT id FROM archive WHERE owner = ? AND archive_id = ?", (owner, archive_id)
    ).fetchone()
    if row is None:
        raise UnknownArchiveId(f"no message {archive_id!r} in the archive of {owner}")
    return int(row[0])


def _conditions(conn: Connection, owner: str, where: ArchiveFilter) -> tuple[str, list[Any]]:
    """The WHERE clause (without the keyword) and its parameters for one owner and filter."""
    with_resource = where.with_resource if where.with_jid is not None else None
    after = _row_id(conn, owner, where.after_id) if where.after_id is not None else None
    before = _row_id(conn, owner, where.before_id) if where.before_id is not None else None
    checks = (("owner = ?", owner), ("with_jid = ?", where.with_jid), ("with_resource = ?", with_resource),
              ("stamp >= ?", where.start), ("stamp <= ?", where.end), ("id > ?", after), ("id < ?", before))
    sql = [clause for clause, value in checks if value is not None]
    params: list[Any] = [value for _clause, value in checks if value is not None]
    if where.ids is not None:
        sql.append(f"archive_id IN ({', '.join('?' * len(where.ids))})" if where.ids else "0 = 1")
        params.extend(where.ids)
    return " AND ".join(sql), params


def _message(row: tuple[Any, ...]) -> ArchivedMessage:
    return ArchivedMessage(str(row[1]), str(row[2]), float(row[3]), bytes(row[4]))


class ArchiveStore:
    """``storage.api.ArchiveStore`` on a ``Database``; a page is read in one snapshot."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self, owner: str, archive_id: str, with_jid: str, with_resource: str, stamp: float, stanza: bytes
    ) -> None:
        def insert(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO archive (owner, archive_id, with_jid, with_resource, stamp, stanza) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (owner, archive_id, with_jid, with_resource, stamp, stanza),
            )

        await self._db.write(insert)

    async def page(
        self, owner: str, where: ArchiveFilter, *, limit: int, after: str | None = None,
        before: str | None = None,
    ) -> ArchivePage:
        def select(conn: Connection) -> ArchivePage:
            cond, params = _conditions(conn, owner, where)
            count = int(conn.execute(f"SELECT count(*) FROM archive WHERE {cond}", params).fetchone()[0])
            page_cond, page_params = cond, list(params)
            if after is not None:
                page_cond += " AND id > ?"
                page_params.append(_row_id(conn, owner, after))
            backwards = before is not None
            if before:
                page_cond += " AND id < ?"
                page_params.append(_row_id(conn, owner, before))
            order = "DESC" if backwards else "ASC"
            rows = list(conn.execute(
                f"SELECT {_COLUMNS} FROM archive WHERE {page_cond} ORDER BY id {order} LIMIT ?",
                [*page_params, limit + 1],
            ))
            complete = len(rows) <= limit
            rows = rows[:limit]
            if backwards:
                rows.reverse()
            first_index = 0
            if rows:
                first_index = int(conn.execute(
                    f"SELECT count(*) FROM archive WHERE {cond} AND id < ?", [*params, rows[0][0]]
                ).fetchone()[0])
            return ArchivePage([_message(r) for r in rows], count, first_index, complete)

        return await self._db.read(select)

    async def bounds(self, owner: str) -> tuple[ArchivedMessage | None, ArchivedMessage | None]:
        def select(conn: Connection) -> tuple[ArchivedMessage | None, ArchivedMessage | None]:
            ends = []
            for order in ("ASC", "DESC"):
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM archive WHERE owner = ? ORDER BY id {order} LIMIT 1", (owner,)
                ).fetchone()
                ends.append(None if row is None else _message(row))
            return ends[0], ends[1]

        return await self._db.read(select)

    async def replace(self, owner: str, archive_id: str, stanza: bytes) -> bool:
        def update(conn: Connection) -> bool:
            conn.execute(
                "UPDATE archive SET stanza = ? WHERE owner = ? AND archive_id = ?", (stanza, owner, archive_id)
            )
            return conn.changes() > 0

        return await self._db.write(update)

    async def purge_before(self, stamp: float) -> int:
        def delete(conn: Connection) -> int:
            conn.execute("DELETE FROM archive WHERE stamp < ?", (stamp,))
            return conn.changes()

        return await self._db.write(delete)

    async def delete_owner(self, owner: str) -> int:
        def delete(conn: Connection) -> int:
            conn.execute("DELETE FROM archive WHERE owner = ?", (owner,))
            removed = conn.changes()
            conn.execute("DELETE FROM archive_prefs WHERE owner = ?", (owner,))
            return removed

        return await self._db.write(delete)

    async def prefs(self, owner: str) -> ArchivePrefs | None:
        def select(conn: Connection) -> ArchivePrefs | None:
            row = conn.execute(
                "SELECT default_mode, always_jids, never_jids FROM archive_prefs WHERE owner = ?", (owner,)
            ).fetchone()
            if row is None:
                return None
            return ArchivePrefs(str(row[0]), tuple(json.loads(row[1])), tuple(json.loads(row[2])))

        return await self._db.read(select)

    async def set_prefs(self, owner: str, prefs: ArchivePrefs) -> None:
        def upsert(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO archive_prefs (owner, default_mode, always_jids, never_jids) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (owner) DO UPDATE SET default_mode = excluded.default_mode, "
                "always_jids = excluded.always_jids, never_jids = excluded.never_jids",
                (owner, prefs.default, json.dumps(list(prefs.always)), json.dumps(list(prefs.never))),
            )

        await self._db.write(upsert)
