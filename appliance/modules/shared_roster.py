"""Shared rosters: groups an administrator defines whose members see each other on their rosters, with
presence, as if everyone had subscribed to everyone (like ejabberd's mod_shared_roster and Openfire's
groups). A group lists its members, or takes every account of the host ("everyone"), or the members of a
directory group. Changes reach online clients at once as roster pushes and presence.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import Awaitable, Callable, Iterable

from appliance.core.api import Directory, Module, ModuleContext
from appliance.modules.presence import presence
from appliance.modules.roster import RosterService, SharedContacts
from appliance.storage.api import AccountStore, AlreadyExists, SharedGroup, SharedGroupStore, UnknownAccount
from appliance.xmpp.jid import JID, JIDError

_PAGE = 1000


class GroupError(ValueError):
    """A group operation that cannot be done, in words for an administrator."""


class SharedIndex:
    """Who shares which contacts, computed from the groups of one host (pure, in memory)."""

    def __init__(self, host: str, groups: Iterable[SharedGroup], everyone: Iterable[str] = (),
                 directory: dict[str, frozenset[str]] | None = None, names: dict[str, str] | None = None) -> None:
        self.host = host
        self.names = dict(names or {})  # username -> display name (from the directory)
        self.members: dict[str, frozenset[str]] = {}
        everyone = frozenset(everyone)
        directory = directory or {}
        for group in groups:
            members = set(group.members)
            if group.everyone:
                members |= everyone
            if group.directory_group:
                members |= directory.get(group.directory_group, frozenset())
            self.members[group.name] = frozenset(members)
        self.groups_of: dict[str, list[str]] = {}
        for name, members in sorted(self.members.items()):
            for member in members:
                self.groups_of.setdefault(member, []).append(name)
        self._digests: dict[str, str] = {}

    def contacts(self, username: str) -> dict[str, tuple[str, ...]]:
        """Bare JID of each contact shared with `username` -> the groups they share, in name order."""
        out: dict[str, list[str]] = {}
        for name in self.groups_of.get(username, ()):
            for member in self.members[name]:
                if member != username:
                    out.setdefault(f"{member}@{self.host}", []).append(name)
        return {contact: tuple(groups) for contact, groups in out.items()}

    def digest(self, username: str) -> str:
        found = self._digests.get(username)
        if found is None:
            contacts = self.contacts(username)
            text = "\n".join(f"{c}\0{self.names.get(c.partition('@')[0], '')}\0{chr(0).join(g)}"
                             for c, g in sorted(contacts.items()))  # a renamed colleague changes it too
            found = hashlib.sha256(text.encode()).hexdigest()[:12] if contacts else ""
            self._digests[username] = found
        return found


class GroupAdmin:
    """Administrative group operations on one host's stored groups; `changed` (a running server) is
    awaited after every change so online members are told."""

    def __init__(self, store: SharedGroupStore, host: str,
                 changed: Callable[[], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.host = host
        self._changed = changed

    async def _done(self) -> None:
        if self._changed is not None:
            await self._changed()

    async def list(self) -> list[SharedGroup]:
        return await self.store.groups(self.host)

    async def create(self, name: str, *, everyone: bool = False, directory_group: str = "",
                     members: Iterable[str] = ()) -> None:
        try:
            await self.store.create(SharedGroup(self.host, name, everyone, directory_group, tuple(sorted(members))))
        except AlreadyExists:
            raise GroupError(f"a group {name!r} exists already on {self.host}") from None
        except UnknownAccount as exc:
            raise GroupError(str(exc)) from None
        await self._done()

    async def rename(self, name: str, new_name: str) -> None:
        try:
            found = await self.store.rename(self.host, name, new_name)
        except AlreadyExists:
            raise GroupError(f"a group {new_name!r} exists already on {self.host}") from None
        if not found:
            raise GroupError(f"no group {name!r} on {self.host}")
        await self._done()

    async def update(self, name: str, *, everyone: bool, directory_group: str = "") -> None:
        if not await self.store.update(self.host, name, everyone=everyone, directory_group=directory_group):
            raise GroupError(f"no group {name!r} on {self.host}")
        await self._done()

    async def delete(self, name: str) -> None:
        if not await self.store.delete(self.host, name):
            raise GroupError(f"no group {name!r} on {self.host}")
        await self._done()

    async def add_member(self, name: str, username: str) -> None:
        try:
            found = await self.store.add_member(self.host, name, username)
        except UnknownAccount:
            raise GroupError(f"no account {username}@{self.host}") from None
        if not found:
            raise GroupError(f"no group {name!r} on {self.host}")
        await self._done()

    async def remove_member(self, name: str, username: str) -> None:
        if not await self.store.remove_member(self.host, name, username):
            raise GroupError(f"{username}@{self.host} is not a listed member of {name!r}")
        await self._done()


class SharedRosterView(SharedContacts):
    """SharedContacts over the current index of one host."""

    def __init__(self, host: str) -> None:
        self.index = SharedIndex(host, ())

    def contacts(self, user: JID) -> dict[str, tuple[str, ...]]:
        if user.domain != self.index.host or not user.local:
            return {}
        return self.index.contacts(user.local)

    def digest(self, user: JID) -> str:
        if user.domain != self.index.host or not user.local:
            return ""
        return self.index.digest(user.local)

    def name(self, contact: str) -> str | None:
        local, _, domain = contact.partition("@")
        return self.index.names.get(local) if domain == self.index.host else None


class SharedRoster(Module):
    """Shared-roster groups of one host, kept in memory and applied to rosters and presence."""

    name = "shared_roster"
    depends = ("roster", "presence")

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.roster = ctx.require(RosterService)
        self.view = SharedRosterView(ctx.host)
        self.admin = GroupAdmin(ctx.store(SharedGroupStore), ctx.host, self.refresh)
        self._lock = asyncio.Lock()
        directory = ctx.optional(Directory)  # type: ignore[type-abstract]
        self.directory = directory if directory is not None and directory.serves(ctx.host) else None
        self.directory_members: dict[str, frozenset[str]] = {}  # group DN -> usernames, as last read
        self._reread = False  # the next load reads every directory group again
        self.directory_names: dict[str, str] = {}  # username -> the name the directory gives them
        ctx.provide(SharedContacts, self.view)  # type: ignore[type-abstract]
        ctx.provide(GroupAdmin, self.admin)
        ctx.on_account_change(self.on_account_change)
        ctx.on_shared_change("shared-groups", self.on_changed_elsewhere)
        if self.directory is not None:
            ctx.every(self.directory.sync_interval, self.sync_directory, "directory-groups")

    async def start(self) -> None:
        self.view.index = await self._load()

    async def sync_directory(self) -> None:
        """Read the members of every directory group again (they change in the directory), then refresh. A
        group that cannot be read now keeps the members read last: an outage of the directory must not
        take everyone's colleagues off their rosters."""
        self._reread = True
        await self.refresh()

    async def _read_directory_group(self, dn: str) -> frozenset[str]:
        """The usernames of a directory group's (nested) members; their accounts are made as needed, so
        messages to colleagues who never logged in wait for them as offline messages."""
        assert self.directory is not None
        try:
            members = await self.directory.members(dn)
        except ConnectionError as exc:
            self.ctx.log.warning("members of directory group %s not read: %s", dn, exc)
            return self.directory_members.get(dn, frozenset())
        out = set()
        for username, member in members.items():
            try:
                jid = JID.make(username, self.ctx.host)
            except (JIDError, ValueError):
                self.ctx.log.warning("directory user %r (%s) has no valid chat address; left out", username, member.dn)
                continue
            await self.ctx.accounts.provision(jid, member.dn, notify=False)
            out.add(jid.local or "")
            if member.name:
                self.directory_names[jid.local or ""] = member.name
        return frozenset(out)

    async def _load(self) -> SharedIndex:
        groups = await self.ctx.store(SharedGroupStore).groups(self.ctx.host)
        if self.directory is not None:
            for dn in {group.directory_group for group in groups if group.directory_group}:
                if self._reread or dn not in self.directory_members:
                    self.directory_members[dn] = await self._read_directory_group(dn)
            self._reread = False
        everyone: list[str] = []
        if any(group.everyone for group in groups):  # only then is every account of the host read
            accounts = self.ctx.store(AccountStore)
            while page := await accounts.list_users(self.ctx.host, limit=_PAGE, offset=len(everyone)):
                everyone += page
        return SharedIndex(self.ctx.host, groups, everyone, self.directory_members, self.directory_names)

    async def on_account_change(self, host: str) -> None:
        """An account of `host` was created or deleted: "everyone" groups and listed members change."""
        if host == self.ctx.host:
            await self.refresh()

    async def refresh(self) -> None:
        """Reload the groups and tell each online user what changed for them: roster pushes, and presence
        between the new pairs (unavailable between the pairs that no longer share a group)."""
        async with self._lock:  # two changes at once must not diff against the same old index
            online = {s.jid.local for s in self.ctx.sessions.all() if s.jid.domain == self.ctx.host and s.jid.local}
            before = {username: self.view.index.contacts(username) for username in online}
            self.view.index = await self._load()
            for username in sorted(online):  # every node's users: this node tells them all
                await self._tell(username, before[username], self.view.index.contacts(username))
        await self.ctx.shared_changed("shared-groups", "")

    async def on_changed_elsewhere(self, _key: str | None, _data: bytes) -> None:
        """Another node changed the groups and told the users (or this node may have missed changes):
        read them again."""
        async with self._lock:
            self.view.index = await self._load()

    async def _tell(self, username: str, old: dict[str, tuple[str, ...]], new: dict[str, tuple[str, ...]]) -> None:
        user = JID.make(username, self.ctx.host)
        for contact in sorted(old.keys() | new.keys()):
            if old.get(contact) != new.get(contact):
                await self.roster.push_current(user, contact)
        sessions = self.ctx.sessions.available(user)
        for contact in sorted(new.keys() - old.keys()):
            for session in sessions:  # the contact's own sessions send theirs in their turn of refresh()
                if session.presence is not None:
                    out = copy.copy(session.presence)
                    out.set("from", str(session.jid))
                    out.set("to", contact)
                    await self.ctx.route(out)
        for contact in sorted(old.keys() - new.keys()):
            item = await self.roster.item(user, JID.parse(contact))
            if item is not None and item.subscription in ("from", "both"):
                continue  # still subscribed through the user's own roster
            for session in sessions:
                await self.ctx.route(presence(session.jid, contact, "unavailable"))
