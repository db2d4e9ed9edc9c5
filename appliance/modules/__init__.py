"""Feature modules. BUILTIN is a static tuple (never imports by string) so PyInstaller sees every module."""

from __future__ import annotations

from appliance.core.api import Module
from appliance.modules.avatar import Avatars
from appliance.modules.blocking import Blocking
from appliance.modules.bookmarks import Bookmarks
from appliance.modules.caps import EntityCapabilities
from appliance.modules.carbons import Carbons
from appliance.modules.contact_addresses import ContactAddresses
from appliance.modules.csi import ClientStateIndication
from appliance.modules.disco import Disco
from appliance.modules.extdisco import ExternalServices
from appliance.modules.last import LastActivity
from appliance.modules.mam import Mam
from appliance.modules.message import Message
from appliance.modules.muc import Muc
from appliance.modules.offline import Offline
from appliance.modules.pep import Pep
from appliance.modules.ping import Ping
from appliance.modules.presence import Presence
from appliance.modules.private import PrivateStorage
from appliance.modules.pubsub.service import PubSubService
from appliance.modules.push import Push
from appliance.modules.register import Register
from appliance.modules.roster import Roster
from appliance.modules.sasl2 import Sasl2
from appliance.modules.stream_management import StreamManagement
from appliance.modules.time import EntityTime
from appliance.modules.upload import Upload
from appliance.modules.vcard import VCardTemp
from appliance.modules.version import Version

BUILTIN: tuple[type[Module], ...] = (
    Roster,
    Presence,
    Message,
    Offline,
    Disco,
    ContactAddresses,
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
    StreamManagement,  # issue 6: session-level protocols
    ClientStateIndication,
    Sasl2,
    EntityCapabilities,
    Pep,
    Bookmarks,
    Avatars,
)
