"""The service layer of a running server, wired from its parts (and nothing more than each service needs)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from appliance.certs.care import CertificateCare
from appliance.certs.ocsp import OcspFetcher
from appliance.certs.store import CertificateStore
from appliance.config.model import Config
from appliance.core.accounts import AccountService
from appliance.core.s2s import Federation
from appliance.core.server import XmppCore
from appliance.directory.ldap import LdapDirectory
from appliance.modules.announce import Announcements
from appliance.modules.muc.admin import RoomAdmin
from appliance.modules.roster import RosterService
from appliance.modules.shared_roster import GroupAdmin
from appliance.platform.updates import UpdateCheck
from appliance.services import Services
from appliance.services.accounts import AccountAdmin
from appliance.services.activity import ActivityHistory
from appliance.services.admins import Administrators
from appliance.services.announcements import AnnouncementDesk, Announcer
from appliance.services.certificates import CertificateDesk
from appliance.services.cluster import ClusterDesk, NodeReader
from appliance.services.directory import DirectoryDesk
from appliance.services.federation import FederationDesk
from appliance.services.invitations import ContactList, Invitations
from appliance.services.rooms import RoomDesk, RoomManager
from appliance.services.scheduled_backups import BackupDesk
from appliance.services.settings import Reload, Settings
from appliance.services.shared_groups import GroupManager, SharedGroupDesk
from appliance.services.status import ServerStatus
from appliance.services.tokens import ApiTokens
from appliance.storage.api import InvitationStore
from appliance.storage.tokens import TokenFile
from appliance.util.logbuffer import RingBufferHandler


def live_room_managers(core: XmppCore) -> list[RoomManager]:
    """The RoomAdmin each host's MUC module publishes (hosts with group chat off have none)."""
    managers = (host.services.get(RoomAdmin) for host in core.hosts.values())
    return [manager for manager in managers if manager is not None]


def live_announcers(core: XmppCore) -> list[Announcer]:
    """The Announcements each host's announce module publishes."""
    found = (host.services.get(Announcements) for host in core.hosts.values())
    return [announcer for announcer in found if announcer is not None]


def live_group_managers(core: XmppCore) -> dict[str, GroupManager]:
    """Host -> the GroupAdmin its shared-roster module publishes (hosts with it turned off have none)."""
    found = ((name, host.services.get(GroupAdmin)) for name, host in core.hosts.items())
    return {name: admin for name, admin in found if admin is not None}


def live_contact_lists(core: XmppCore) -> Callable[[str], ContactList | None]:
    """Host -> the roster service its roster module publishes (changes reach online clients)."""

    def contacts(host: str) -> ContactList | None:
        found = core.hosts.get(host)
        return found.services.get(RosterService) if found is not None else None

    return contacts


def running_services(core: XmppCore, *, accounts: AccountService, database_size: Callable[[], Awaitable[int]],
                     reload: Reload, certs: CertificateStore,
                     cert_care: CertificateCare, log_buffer: RingBufferHandler | None,
                     directory: LdapDirectory | None = None,
                     federation: Callable[[], Federation | None] = lambda: None,
                     cluster: Callable[[], NodeReader | None] = lambda: None,
                     updates: UpdateCheck | None = None, ocsp: OcspFetcher | None = None) -> Services:
    """Every service the console and the API call, on the running core."""

    def config() -> Config:  # the running configuration: reload replaces it
        return core.config

    tokens = TokenFile(core.config.server.state_dir)
    settings = Settings(config, reload)
    admins = Administrators(config, tokens, settings)
    account_admin = AccountAdmin(accounts, core.sessions, tuple(core.hosts), admins=admins)
    shared = SharedGroupDesk(lambda: live_group_managers(core))
    return Services(
        accounts=account_admin,
        admins=admins,
        invitations=Invitations(core.stores.get(InvitationStore), accounts, account_admin, config,
                                reserved=admins.is_admin, contacts=live_contact_lists(core),
                                roster=core.stores.roster, shared=shared),
        tokens=ApiTokens(tokens, admins.is_admin),
        settings=settings,
        status=ServerStatus(accounts=account_admin, sessions=core.sessions, stats=core.stats, certs=certs,
                            database_size=database_size, started_at=core.started_at,
                            log_buffer=log_buffer, updates=updates),
        rooms=RoomDesk(lambda: live_room_managers(core)),
        certificates=CertificateDesk(cert_care, certs, config, ocsp),
        federation=FederationDesk(settings, federation, core.stats),
        announcements=AnnouncementDesk(lambda: live_announcers(core)),
        backups=BackupDesk(config),
        groups=shared,
        activity=ActivityHistory(core.config.server.state_dir / "activity.json", core.stats,
                                 lambda: len(core.sessions)),
        directory=DirectoryDesk(directory),
        cluster=ClusterDesk(cluster),
    )


__all__ = ["live_announcers", "live_contact_lists", "live_group_managers", "live_room_managers", "running_services"]
