"""Extensible SASL (XEP-0388) with Bind 2 (XEP-0386), FAST (XEP-0484), channel-binding advertisement
(XEP-0440) and SCRAM downgrade protection (XEP-0474).

Authentication belongs to the stream (core/c2s.py, core/authn.py, xmpp/sasl/); this module switches
SASL2 on for a host and carries [modules.sasl2]. Other modules take part in Bind 2 through the
`events.BIND2_FEATURES` and `events.BIND2_ENABLE` hooks (carbons enables itself inline that way).
"""

from __future__ import annotations

from appliance.core.api import Module, ModuleContext, Sasl2Options, Xep


class Sasl2(Module):
    """Offers `<authentication xmlns='urn:xmpp:sasl:2'/>` next to RFC 6120 SASL."""

    name = "sasl2"
    options = Sasl2Options  # declared in core/session_options.py: core/c2s reads them
    implements = (
        Xep(388, "1.0.1"),
        Xep(386, "1.1.0", note="resource = client tag + stable per-client suffix"),
        Xep(484, "0.2.0", note="HT-SHA-256-NONE, -ENDP, -EXPR"),
        Xep(440, "1.0.0", note="offered with RFC 6120 SASL too"),
        Xep(474, "0.5.0", note="with RFC 6120 SASL too"),
    )

    def setup(self, ctx: ModuleContext[Sasl2Options]) -> None:
        """Nothing to register: the session consults this host's options."""
