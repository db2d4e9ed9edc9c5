"""The services the CLI uses on a stopped server: the same ones the console calls, on the stored data."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.app.storage import Storage
from appliance.config.model import Config
from appliance.core.accounts import AccountService
from appliance.core.sessions import SessionDirectory
from appliance.modules.muc import MucOptions, defaults_from
from appliance.modules.muc.admin import RoomAdmin
from appliance.modules.shared_roster import GroupAdmin, SharedRoster
from appliance.services.accounts import AccountAdmin
from appliance.services.invitations import Invitations
from appliance.services.portable import PortableData
from appliance.services.rooms import RoomDesk, RoomManager
from appliance.services.setup import SetupAnswers, SetupService
from appliance.services.shared_groups import GroupManager, SharedGroupDesk
from appliance.storage.api import InvitationStore


@dataclass(frozen=True, slots=True)
class OfflineServices:
    """Account and room administration without a running server (nobody is online to tell)."""

    accounts: AccountAdmin
    rooms: RoomDesk
    room_services: dict[str, str]  # host -> its chat service domain
    groups: SharedGroupDesk
    invitations: Invitations
    portable: PortableData  # XEP-0227 export and import


def stored_room_managers(config: Config, storage: Storage) -> dict[str, RoomManager]:
    """Host -> a RoomAdmin on the stored rooms of its chat service."""
    out: dict[str, RoomManager] = {}
    for host in config.hosts:
        options = host.modules.of(MucOptions)
        out[host.name] = RoomAdmin(storage.stores.muc, options.service_domain(host.name), defaults_from(options),
                                   now=time.time())
    return out


def stored_group_managers(config: Config, storage: Storage) -> dict[str, GroupManager]:
    """Host -> a GroupAdmin on its stored shared groups (hosts with the module turned off have none)."""
    return {host.name: GroupAdmin(storage.stores.shared_groups, host.name) for host in config.hosts
            if SharedRoster.name not in host.modules.disabled}


async def offline_setup(answers: SetupAnswers, config_path: Path, state_dir: Path) -> Config:
    """`parlour setup`: complete a setup on the state folder's database (opened for this call)."""
    storage = await Storage.open(state_dir)
    try:
        setup = SetupService(config_path=config_path, state_dir=state_dir, accounts=storage.stores.accounts)
        return await setup.complete(answers)
    finally:
        await storage.close()


@asynccontextmanager
async def offline_services(config: Config) -> AsyncIterator[OfflineServices]:
    """The services on `<state_dir>/parlour.db`, opened once and closed (all writes committed) on exit."""
    storage = await Storage.open(config.server.state_dir, config.storage)
    try:
        accounts = AccountService(storage.stores.accounts, iterations=config.limits.scram_iterations)
        managers = stored_room_managers(config, storage)
        hosts = tuple(h.name for h in config.hosts)
        account_admin = AccountAdmin(accounts, SessionDirectory(), hosts, admins=None)
        shared = SharedGroupDesk(lambda: stored_group_managers(config, storage))
        yield OfflineServices(
            accounts=account_admin,
            rooms=RoomDesk(managers.values),
            room_services={host: manager.domain for host, manager in managers.items()},
            groups=shared,
            # The database is shared with a running server: what is made here works there at once.
            invitations=Invitations(storage.stores.get(InvitationStore), accounts, account_admin, lambda: config,
                                    reserved=lambda jid: jid in config.server.admins, roster=storage.stores.roster,
                                    shared=shared),
            portable=PortableData(storage.stores.accounts, storage.stores.transfer, hosts,
                                  iterations=config.limits.scram_iterations),
        )
    finally:
        await storage.close()


__all__ = ["OfflineServices", "offline_services", "offline_setup", "stored_group_managers", "stored_room_managers"]
