"""Client state indication (XEP-0352): inactive clients get presence updates and chat states later.

The holding back happens where stanzas leave a session (core/csi.py); this module switches the
`<csi xmlns='urn:xmpp:csi:0'/>` stream feature on for a host and carries [modules.csi].
"""

from __future__ import annotations

from appliance.core.api import CsiOptions, Module, ModuleContext, Xep


class ClientStateIndication(Module):
    """Lets clients say `<active/>`/`<inactive/>`; see core/csi.py for what waits."""

    name = "csi"
    options = CsiOptions  # declared in core/session_options.py: core/c2s reads them
    implements = (Xep(352, "1.0.0", note="newest presence per sender and bodiless chat states wait"),)

    def setup(self, ctx: ModuleContext[CsiOptions]) -> None:
        """Nothing to register: the session consults this host's options."""
