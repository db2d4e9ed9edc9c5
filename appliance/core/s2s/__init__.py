"""Server-to-server (federation) drivers: connections running `xmpp.s2s.ServerStream`, and their manager."""

from appliance.core.s2s.connection import ServerConnection
from appliance.core.s2s.federation import DomainPolicy, Federation, S2SNetwork, Unreachable

__all__ = ["DomainPolicy", "Federation", "S2SNetwork", "ServerConnection", "Unreachable"]
