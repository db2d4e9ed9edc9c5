"""What this build of Parlour is made of: its modules and its stores, in static tuples.

Everything that enumerates them reads them here: the composition root loads BUILTIN and opens STORES;
the configuration schema is collected from the modules' options (config/ sits below the modules and
cannot know them, so the CLI, the console and the wizard load configuration through here); the
compliance table comes from their `implements`. The tuples are static (never imports by string) so
PyInstaller sees every module. Adding a module with options and a store of its own touches its module
file, its store file (with its migration) and this file.
`python -m appliance.catalog > docs/configuration.md` (`make docs`) prints the configuration reference.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from appliance.config import Config, docs
from appliance.config import default_config as _default_config
from appliance.config import load_config as _load_config
from appliance.config import parse_config as _parse_config
from appliance.config.model import StorageConfig
from appliance.config.options import Schema, schema
from appliance.core.api import Module
from appliance.core.stores import Stores
from appliance.modules.adhoc import Adhoc
from appliance.modules.admin_commands import AdminCommands
from appliance.modules.announce import Announce
from appliance.modules.avatar import Avatars
from appliance.modules.blocking import Blocking
from appliance.modules.bookmarks import Bookmarks
from appliance.modules.caps import EntityCapabilities
from appliance.modules.carbons import Carbons
from appliance.modules.contact_addresses import ContactAddresses
from appliance.modules.csi import ClientStateIndication
from appliance.modules.directory import DirectoryProfiles
from appliance.modules.disco import Disco
from appliance.modules.extdisco import ExternalServices
from appliance.modules.invites import Invites
from appliance.modules.last import LastActivity
from appliance.modules.mam import Mam
from appliance.modules.message import Message
from appliance.modules.muc import Muc
from appliance.modules.offline import Offline
from appliance.modules.outage_status import OutageStatus
from appliance.modules.pep import Pep
from appliance.modules.ping import Ping
from appliance.modules.presence import Presence
from appliance.modules.private import PrivateStorage
from appliance.modules.proxy65 import Proxy65
from appliance.modules.pubsub.service import PubSubService
from appliance.modules.push import Push
from appliance.modules.register import Register
from appliance.modules.roster import Roster
from appliance.modules.sasl2 import Sasl2
from appliance.modules.shared_roster import SharedRoster
from appliance.modules.stream_management import StreamManagement
from appliance.modules.time import EntityTime
from appliance.modules.upload import Upload
from appliance.modules.vcard import VCardTemp
from appliance.modules.version import Version
from appliance.platform.paths import database_path
from appliance.storage import api
from appliance.storage.connect import open_database as _open_database
from appliance.storage.migrate import Migration, load_migrations
from appliance.storage.stores import (
    accounts,
    archive,
    blocklist,
    host_kv,
    invitations,
    kv,
    muc,
    offline,
    portable,
    pubsub,
    roster,
    shared_groups,
)
from appliance.storage.uploads import UploadFiles
from appliance.storage.workers import Database
from appliance.util.files import private_dir

__all__ = [
    "BUILTIN", "STORES", "STORE_MIGRATIONS", "builtin_schema", "default_config", "load_config", "open_database",
    "open_stores", "parse_config", "probe_database", "schema_version",
]

BUILTIN: tuple[type[Module], ...] = (
    Roster,
    Presence,
    Message,
    Offline,
    Disco,
    ContactAddresses,
    OutageStatus,
    Ping,
    Version,
    EntityTime,
    LastActivity,
    VCardTemp,
    PrivateStorage,
    Blocking,
    Register,
    PubSubService,
    Muc,  # [modules.muc]
    Carbons,
    Mam,
    Push,
    ExternalServices,
    Upload,
    Proxy65,  # issue 16: SOCKS5 bytestreams proxy
    StreamManagement,  # issue 6: session-level protocols
    ClientStateIndication,
    Sasl2,
    EntityCapabilities,
    Pep,
    Bookmarks,
    Avatars,
    Adhoc,  # issue 15: ad-hoc commands and the XEP-0133 admin commands
    Announce,
    AdminCommands,
    SharedRoster,  # issue 15: shared-roster groups
    DirectoryProfiles,  # issue 15: vCards from the company directory ([ldap])
    Invites,  # issue 16: XEP-0401 invitations from clients
)


# The SQL stores: the Protocol a module asks for (`ctx.store(api.RosterStore)`) -> its implementation.
STORES: tuple[tuple[type, Callable[[Database], object]], ...] = (
    (api.AccountStore, accounts.AccountStore),
    (api.RosterStore, roster.RosterStore),
    (api.OfflineStore, offline.OfflineStore),
    (api.KeyValueStore, kv.KeyValueStore),
    (api.BlocklistStore, blocklist.BlocklistStore),
    (api.MucStore, muc.MucStore),
    (api.PubSubStore, pubsub.PubSubStore),
    (api.ArchiveStore, archive.ArchiveStore),
    (api.HostValueStore, host_kv.HostValueStore),
    (api.SharedGroupStore, shared_groups.SharedGroupStore),
    (api.InvitationStore, invitations.InvitationStore),
    (api.AccountTransfer, portable.AccountTransfer),  # XEP-0227 export and import
)

# Schema changes that stores keep beside their code (a store module's MIGRATIONS), after the numbered
# files of storage/migrations/.
STORE_MIGRATIONS: tuple[Migration, ...] = ()


def schema_version() -> int:
    """The database schema version this build migrates to (a backup from a newer one cannot be restored)."""
    return load_migrations(extra=STORE_MIGRATIONS)[-1].version


async def open_database(state_dir: Path, storage: StorageConfig | None = None) -> Database:
    """The database `[storage]` names (`<state_dir>/parlour.db` by default), migrated to the schema of every
    store of this build; the state folder is kept to the server's user (0700) whatever the umask."""
    private_dir(state_dir)
    storage = storage or StorageConfig()
    location = storage.url or database_path(state_dir)
    return await _open_database(location, pool_size=storage.pool_size, store_migrations=STORE_MIGRATIONS)


def probe_database(url: str) -> tuple[str, int, int]:
    """Connect to the PostgreSQL database `url` without changing it: (its name without the password, the
    schema version it holds (0: no Parlour tables), the newest this build knows). Blocking; raises what
    psycopg raises when it cannot connect."""
    from appliance.storage.postgres import describe
    from appliance.storage.transfer import schema_status

    status = schema_status(url)
    return describe(url), status.version, status.latest


def open_stores(db: Database, state_dir: Path) -> Stores:
    """Every store of this build on the open database (uploads in `<state_dir>/uploads`)."""
    return Stores([*((kind, make(db)) for kind, make in STORES), (api.UploadArea, UploadFiles(state_dir / "uploads"))])


def builtin_schema() -> Schema:
    """The configuration schema of a server made of the built-in modules."""
    return schema(BUILTIN)


def default_config(state_dir: Path) -> Config:
    """`config.default_config` (host "localhost" on loopback) with every built-in module at its defaults."""
    return _default_config(state_dir, modules=BUILTIN)


def load_config(path: Path, *, default_state_dir: Path | None = None) -> Config:
    """`config.load_config` for the built-in modules."""
    return _load_config(path, modules=BUILTIN, default_state_dir=default_state_dir)


def parse_config(text: str, source: str, *, base_dir: Path | None = None,
                 default_state_dir: Path | None = None) -> Config:
    """`config.parse_config` for the built-in modules."""
    return _parse_config(text, source, modules=BUILTIN, base_dir=base_dir, default_state_dir=default_state_dir)


def main() -> int:
    sys.stdout.write(docs.render(builtin_schema()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
