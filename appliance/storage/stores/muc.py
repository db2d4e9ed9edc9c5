"""Persistent multi-user chat rooms and their affiliations in SQL."""

from __future__ import annotations

from appliance.storage.api import MucAffiliation, MucRoom
from appliance.storage.engine import Connection
from appliance.storage.workers import Database

_ROOM = "SELECT service, name, config, subject, subject_by, created_at FROM muc_rooms"
_AFFS = "SELECT name, jid, affiliation, nick, reason FROM muc_affiliations WHERE service = ?"


def _affiliations(conn: Connection, service: str, name: str | None) -> dict[str, list[MucAffiliation]]:
    sql, args = (_AFFS, (service,)) if name is None else (_AFFS + " AND name = ?", (service, name))
    out: dict[str, list[MucAffiliation]] = {}
    for room, jid, aff, nick, reason in conn.execute(sql + " ORDER BY name, jid", args):
        out.setdefault(str(room), []).append(MucAffiliation(str(jid), str(aff), str(nick), str(reason)))
    return out


def _room(row: tuple[object, ...], affs: dict[str, list[MucAffiliation]]) -> MucRoom:
    service, name, config, subject, subject_by, created = row
    return MucRoom(str(service), str(name), str(config), str(subject), str(subject_by), float(created),  # type: ignore[arg-type]
                   tuple(affs.get(str(name), ())))


class MucStore:
    """``storage.api.MucStore`` on a ``Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def rooms(self, service: str) -> list[MucRoom]:
        def select(conn: Connection) -> list[MucRoom]:
            affs = _affiliations(conn, service, None)
            rows = conn.execute(_ROOM + " WHERE service = ? ORDER BY name", (service,)).fetchall()
            return [_room(row, affs) for row in rows]

        return await self._db.read(select)

    async def room(self, service: str, name: str) -> MucRoom | None:
        def select(conn: Connection) -> MucRoom | None:
            row = conn.execute(_ROOM + " WHERE service = ? AND name = ?", (service, name)).fetchone()
            return None if row is None else _room(row, _affiliations(conn, service, name))

        return await self._db.read(select)

    async def save(self, room: MucRoom) -> None:
        def upsert(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO muc_rooms (service, name, config, subject, subject_by, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (service, name) DO UPDATE SET "
                "config = excluded.config, subject = excluded.subject, subject_by = excluded.subject_by",
                (room.service, room.name, room.config, room.subject, room.subject_by, room.created_at),
            )
            conn.execute("DELETE FROM muc_affiliations WHERE service = ? AND name = ?", (room.service, room.name))
            conn.executemany(
                "INSERT INTO muc_affiliations (service, name, jid, affiliation, nick, reason) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(room.service, room.name, a.jid, a.affiliation, a.nick, a.reason) for a in room.affiliations],
            )

        await self._db.write(upsert)

    async def set_subject(self, service: str, name: str, subject: str, by: str) -> None:
        await self._db.write(lambda conn: conn.execute(
            "UPDATE muc_rooms SET subject = ?, subject_by = ? WHERE service = ? AND name = ?",
            (subject, by, service, name),
        ))

    async def set_affiliation(self, service: str, name: str, item: MucAffiliation) -> None:
        def put(conn: Connection) -> None:
            if item.affiliation == "none":
                conn.execute(
                    "DELETE FROM muc_affiliations WHERE service = ? AND name = ? AND jid = ?",
                    (service, name, item.jid),
                )
                return
            conn.execute(
                "INSERT INTO muc_affiliations (service, name, jid, affiliation, nick, reason) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (service, name, jid) DO UPDATE SET "
                "affiliation = excluded.affiliation, nick = excluded.nick, reason = excluded.reason",
                (service, name, item.jid, item.affiliation, item.nick, item.reason),
            )

        await self._db.write(put)

    async def delete(self, service: str, name: str) -> bool:
        def delete(conn: Connection) -> bool:
            conn.execute("DELETE FROM muc_rooms WHERE service = ? AND name = ?", (service, name))
            return conn.changes() > 0

        return await self._db.write(delete)

    async def owned_by(self, service: str, jid: str) -> list[str]:
        def select(conn: Connection) -> list[str]:
            rows = conn.execute(
                "SELECT name FROM muc_affiliations WHERE service = ? AND jid = ? AND affiliation = 'owner' "
                "ORDER BY name",
                (service, jid),
            )
            return [str(r[0]) for r in rows]

        return await self._db.read(select)
