"""Shared-roster groups as administrators manage them (console, API, CLI): members of a group see each
other on their rosters with presence. Every change goes through the host's shared-roster module when the
server runs (online members get roster pushes at once), else to the stored groups; every change is audited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from appliance.services.errors import Conflict, NotFound, ServiceError, audit
from appliance.util.i18n import _
from appliance.xmpp.jid import JID, JIDError

MAX_NAME = 1023  # the longest roster group name the roster module accepts


class GroupRecord(Protocol):
    """A group as the services read it (storage.api.SharedGroup)."""

    @property
    def host(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def everyone(self) -> bool: ...
    @property
    def directory_group(self) -> str: ...
    @property
    def members(self) -> tuple[str, ...]: ...


class GroupManager(Protocol):
    """Group operations on one host (modules.shared_roster.GroupAdmin); refusals raise ValueError."""

    async def list(self) -> Iterable[GroupRecord]: ...

    async def create(self, name: str, *, everyone: bool = False, directory_group: str = "",
                     members: Iterable[str] = ()) -> None: ...

    async def rename(self, name: str, new_name: str) -> None: ...

    async def update(self, name: str, *, everyone: bool, directory_group: str = "") -> None: ...

    async def delete(self, name: str) -> None: ...

    async def add_member(self, name: str, username: str) -> None: ...

    async def remove_member(self, name: str, username: str) -> None: ...


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """One group for the console's table and `parlour group list`."""

    host: str
    name: str
    everyone: bool
    directory_group: str
    members: tuple[str, ...]  # bare JIDs listed by an administrator

    @property
    def kind(self) -> str:
        """How accounts become members, in words."""
        if self.everyone:
            return _("everyone on %(host)s", host=self.host)
        if self.directory_group:
            return _("directory group %(dn)s", dn=self.directory_group)
        return _("listed members")


def group_name(text: str) -> str:
    """A valid group name (what members see as the roster group), else ServiceError."""
    name = " ".join(text.split())
    if not name:
        raise ServiceError(_("A group needs a name."))
    if len(name) > MAX_NAME:
        raise ServiceError(_("A group name has at most %(count)s characters.", count=MAX_NAME))
    return name


class SharedGroupDesk:
    """Shared-roster groups across the hosts of a server, with translated errors and an audit line."""

    def __init__(self, managers: Callable[[], Mapping[str, GroupManager]]) -> None:
        self.managers = managers  # host -> its groups (live modules, or the stored groups for the CLI)

    def _manager(self, host: str) -> GroupManager:
        managers = self.managers()
        manager = managers.get(host)
        if manager is None:
            if not managers:
                raise ServiceError(_("Shared groups are turned off on every host of this server."))
            raise NotFound(_("%(host)s is not a host of this server with shared groups.", host=host))
        return manager

    def hosts(self) -> list[str]:
        return sorted(self.managers())

    async def groups(self, host: str | None = None) -> list[GroupSummary]:
        out = []
        for name in [host] if host else self.hosts():
            for g in await self._manager(name).list():
                members = tuple(f"{m}@{g.host}" for m in g.members)
                out.append(GroupSummary(g.host, g.name, g.everyone, g.directory_group, members))
        return out

    async def group(self, host: str, name: str) -> GroupSummary:
        for group in await self.groups(host):
            if group.name == name:
                return group
        raise NotFound(_("There is no group %(name)s on %(host)s.", name=name, host=host))

    async def create(self, actor: str, host: str, name: str, *, everyone: bool = False,
                     directory_group: str = "", members: Iterable[str] = ()) -> str:
        """Create a group; returns its (normalized) name."""
        name = group_name(name)
        usernames = [self._username(host, m) for m in members]
        manager = self._manager(host)
        if any(g.name == name for g in await manager.list()):
            raise Conflict(_("There is already a group %(name)s on %(host)s.", name=name, host=host))
        await self._do(manager.create(name, everyone=everyone, directory_group=directory_group.strip(),
                                      members=usernames))
        audit.info("admin %s: created shared group %r on %s (everyone=%s, directory=%r, %d members)", actor, name,
                   host, everyone, directory_group, len(usernames))
        return name

    async def rename(self, actor: str, host: str, name: str, new_name: str) -> str:
        new_name = group_name(new_name)
        await self.group(host, name)
        await self._do(self._manager(host).rename(name, new_name))
        audit.info("admin %s: renamed shared group %r on %s to %r", actor, name, host, new_name)
        return new_name

    async def set_everyone(self, actor: str, host: str, name: str, everyone: bool) -> None:
        group = await self.group(host, name)
        await self._do(self._manager(host).update(name, everyone=everyone, directory_group=group.directory_group))
        audit.info("admin %s: shared group %r on %s everyone=%s", actor, name, host, everyone)

    async def set_directory_group(self, actor: str, host: str, name: str, directory_group: str) -> None:
        group = await self.group(host, name)
        await self._do(self._manager(host).update(name, everyone=group.everyone,
                                                  directory_group=directory_group.strip()))
        audit.info("admin %s: shared group %r on %s follows directory group %r", actor, name, host, directory_group)

    async def delete(self, actor: str, host: str, name: str) -> None:
        await self.group(host, name)
        await self._do(self._manager(host).delete(name))
        audit.info("admin %s: deleted shared group %r on %s", actor, name, host)

    async def add_member(self, actor: str, host: str, name: str, account: str) -> None:
        username = self._username(host, account)
        await self.group(host, name)
        await self._do(self._manager(host).add_member(name, username))
        audit.info("admin %s: added %s@%s to shared group %r", actor, username, host, name)

    async def remove_member(self, actor: str, host: str, name: str, account: str) -> None:
        username = self._username(host, account)
        group = await self.group(host, name)
        account = JID.make(username, host).bare()
        if str(account) not in group.members:
            raise NotFound(_("%(account)s is not a member of %(name)s.", account=account, name=name))
        await self._do(self._manager(host).remove_member(name, username))
        audit.info("admin %s: removed %s@%s from shared group %r", actor, username, host, name)

    @staticmethod
    def _username(host: str, account: str) -> str:
        """The username of an account of `host`, written "alice" or "alice@host"."""
        text = account.strip()
        try:
            jid = JID.parse(text if "@" in text else f"{text}@{host}")
        except JIDError:
            jid = None
        if jid is None or not jid.local or jid.resource is not None or jid.domain != host:
            raise ServiceError(_("%(text)s is not an account of %(host)s.", text=text, host=host))
        return jid.local

    @staticmethod
    async def _do(change: Awaitable[None]) -> None:
        try:
            await change
        except ValueError as exc:  # the manager's refusal (no such account, name taken meanwhile)
            raise ServiceError(str(exc)) from None


__all__ = ["GroupManager", "GroupRecord", "GroupSummary", "SharedGroupDesk", "group_name"]
