"""XEP-0060 error conditions with their pubsub#errors application elements."""

from __future__ import annotations

from lxml import etree

from appliance.xmpp.errors import StanzaError
from appliance.xmpp.ns import NS_PUBSUB_ERRORS


def app(name: str, **attrs: str) -> etree._Element:
    """A `<name xmlns='…pubsub#errors'/>` element."""
    return etree.Element(f"{{{NS_PUBSUB_ERRORS}}}{name}", attrs, nsmap={None: NS_PUBSUB_ERRORS})


def unsupported(feature: str, text: str | None = None) -> StanzaError:
    """feature-not-implemented for a pubsub feature this service does not offer."""
    return StanzaError.feature_not_implemented(text, type="cancel", app_element=app("unsupported", feature=feature))


def node_missing(node: str) -> StanzaError:
    return StanzaError.item_not_found(f"No node {node!r}")


def nodeid_required() -> StanzaError:
    return StanzaError.bad_request("This request needs a 'node' attribute", app_element=app("nodeid-required"))


def precondition_not_met(fields: list[str]) -> StanzaError:
    return StanzaError.conflict(
        f"The node's configuration differs in {', '.join(fields)}", type="cancel",
        app_element=app("precondition-not-met"),
    )


def presence_subscription_required() -> StanzaError:
    return StanzaError.not_authorized(
        "Only contacts with a presence subscription may access this node", type="auth",
        app_element=app("presence-subscription-required"),
    )


def not_in_roster_group() -> StanzaError:
    return StanzaError.not_authorized(
        "Only contacts in the allowed roster groups may access this node", type="auth",
        app_element=app("not-in-roster-group"),
    )


def closed_node() -> StanzaError:
    return StanzaError.not_allowed("This node is open only to its whitelist", type="cancel",
                                   app_element=app("closed-node"))


def not_subscribed() -> StanzaError:
    return StanzaError.not_authorized("Only approved subscribers may retrieve items", type="auth",
                                      app_element=app("not-subscribed"))


def invalid_jid() -> StanzaError:
    return StanzaError.bad_request("The JID does not match your own", type="modify",
                                   app_element=app("invalid-jid"))
