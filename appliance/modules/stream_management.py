"""Stream management (XEP-0198): acknowledgements and resumption.

The protocol runs inside the client session (core/c2s.py, core/stream_management.py, xmpp/sm.py),
because it counts every stanza of the stream; this module switches it on for a host, carries its
options ([modules.stream_management]) and its place in the compliance table.
"""

from __future__ import annotations

from appliance.core.api import Module, ModuleContext, StreamManagementOptions, Xep


class StreamManagement(Module):
    """Offers `<sm xmlns='urn:xmpp:sm:3'/>` after authentication and inline in SASL2."""

    name = "stream_management"
    options = StreamManagementOptions  # declared in core/session_options.py: core/c2s reads them
    implements = (Xep(198, "1.6.1", note="resumption over TCP, WebSocket and BOSH; unacked messages rerouted"),)

    def setup(self, ctx: ModuleContext[StreamManagementOptions]) -> None:
        """Nothing to register: the session reads this host's options when a client enables it."""
