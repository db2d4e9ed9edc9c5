"""What the console, the JSON API, the CLI and the setup wizard share: one service per concern.

Each service gets its collaborators in its constructor (appliance/app builds them); none sees the
whole server. `Services` is the record of those a running server hands to its web console.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.services.accounts import AccountAdmin
from appliance.services.activity import ActivityHistory
from appliance.services.admins import Administrators
from appliance.services.announcements import AnnouncementDesk
from appliance.services.certificates import CertificateDesk
from appliance.services.cluster import ClusterDesk
from appliance.services.directory import DirectoryDesk
from appliance.services.federation import FederationDesk
from appliance.services.invitations import Invitations
from appliance.services.rooms import RoomDesk
from appliance.services.scheduled_backups import BackupDesk
from appliance.services.settings import Settings
from appliance.services.shared_groups import SharedGroupDesk
from appliance.services.status import ServerStatus
from appliance.services.tokens import ApiTokens


@dataclass(frozen=True, slots=True)
class Services:
    """The services of one running server, as the admin console and the API use them."""

    accounts: AccountAdmin
    admins: Administrators
    invitations: Invitations
    tokens: ApiTokens
    settings: Settings
    status: ServerStatus
    rooms: RoomDesk
    certificates: CertificateDesk
    federation: FederationDesk
    announcements: AnnouncementDesk
    backups: BackupDesk
    groups: SharedGroupDesk
    activity: ActivityHistory  # the dashboard graphs' hourly figures
    directory: DirectoryDesk
    cluster: ClusterDesk = field(default_factory=lambda: ClusterDesk(lambda: None))  # standalone: no nodes


__all__ = ["Services"]
