"""Node configuration (pubsub#node_config) and subscription options (pubsub#subscribe_options)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from lxml import etree

from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.forms import Field
from appliance.xmpp.ns import NS_PUBSUB

NODE_CONFIG = f"{NS_PUBSUB}#node_config"
PUBLISH_OPTIONS = f"{NS_PUBSUB}#publish-options"
SUBSCRIBE_OPTIONS = f"{NS_PUBSUB}#subscribe_options"
META_DATA = f"{NS_PUBSUB}#meta-data"
AUTHORIZATION = f"{NS_PUBSUB}#subscribe_authorization"

ACCESS_MODELS = ("authorize", "open", "presence", "roster", "whitelist")
PUBLISH_MODELS = ("publishers", "subscribers", "open")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")
NOTIFICATION_TYPES = ("normal", "headline")
MAX = "max"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A leaf node's configuration; `max_items` None means "max" (the service's limit)."""

    title: str = ""
    description: str = ""
    type: str = ""
    access_model: str = "open"
    roster_groups_allowed: tuple[str, ...] = ()
    publish_model: str = "publishers"
    persist_items: bool = True
    max_items: int | None = 10
    deliver_notifications: bool = True
    deliver_payloads: bool = True
    notify_config: bool = False
    notify_delete: bool = True
    notify_retract: bool = True
    send_last_published_item: str = "on_sub_and_presence"
    notification_type: str = "headline"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, default: NodeConfig) -> NodeConfig:
        """A stored configuration; fields it lacks (older rows) take `default`'s values."""
        stored = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in known}
        return dataclasses.replace(default, **values)

    def item_limit(self, service_limit: int) -> int:
        return service_limit if self.max_items is None else self.max_items


@dataclass(frozen=True, slots=True)
class _Spec:
    attr: str
    type: str
    label: str
    options: tuple[str, ...] = ()


_FIELDS: dict[str, _Spec] = {
    "pubsub#title": _Spec("title", "text-single", "A friendly name for the node"),
    "pubsub#description": _Spec("description", "text-single", "A description of the node"),
    "pubsub#type": _Spec("type", "text-single", "The type of node data, usually a namespace"),
    "pubsub#access_model": _Spec("access_model", "list-single", "Who may subscribe and retrieve items",
                                 ACCESS_MODELS),
    "pubsub#roster_groups_allowed": _Spec("roster_groups_allowed", "list-multi",
                                          "Roster groups allowed to subscribe (roster access model)"),
    "pubsub#publish_model": _Spec("publish_model", "list-single", "Who may publish", PUBLISH_MODELS),
    "pubsub#persist_items": _Spec("persist_items", "boolean", "Persist items to storage"),
    "pubsub#max_items": _Spec("max_items", "text-single", 'Most items to persist ("max" for the limit)'),
    "pubsub#deliver_notifications": _Spec("deliver_notifications", "boolean", "Deliver event notifications"),
    "pubsub#deliver_payloads": _Spec("deliver_payloads", "boolean", "Deliver payloads with notifications"),
    "pubsub#notify_config": _Spec("notify_config", "boolean", "Notify subscribers when the configuration "
                                  "changes"),
    "pubsub#notify_delete": _Spec("notify_delete", "boolean", "Notify subscribers when the node is deleted"),
    "pubsub#notify_retract": _Spec("notify_retract", "boolean", "Notify subscribers when items are removed"),
    "pubsub#send_last_published_item": _Spec("send_last_published_item", "list-single",
                                             "When to send the last published item", SEND_LAST),
    "pubsub#notification_type": _Spec("notification_type", "list-single", "Message type of notifications",
                                      NOTIFICATION_TYPES),
}


def _render(config: NodeConfig, attr: str) -> tuple[str, ...]:
    value = getattr(config, attr)
    if isinstance(value, bool):
        return ("1" if value else "0",)
    if isinstance(value, tuple):
        return value
    if value is None:
        return (MAX,)
    return (str(value),)


def config_form(config: NodeConfig, *, type_: str = "form") -> etree._Element:
    """The pubsub#node_config form showing `config`."""
    fields = [
        Field(var, spec.type, _render(config, spec.attr), spec.label, spec.options)
        for var, spec in _FIELDS.items()
    ]
    return forms.build(NODE_CONFIG, fields, type_=type_)


def _parse(var: str, spec: _Spec, raw: tuple[str, ...], limit: int) -> object:
    text = raw[0].strip() if raw else ""
    try:
        if spec.type == "boolean":
            return forms.parse_bool(text)
        if spec.type == "list-multi":
            return tuple(v for v in raw if v)
        if spec.attr == "max_items":
            if text == MAX:
                return None
            number = int(text)
            if not 1 <= number <= limit:
                raise ValueError(text)
            return number
    except ValueError:
        raise StanzaError.not_acceptable(f"Invalid value {text!r} for {var}") from None
    if spec.options and text not in spec.options:
        raise StanzaError.not_acceptable(f"{var} must be one of {', '.join(spec.options)}")
    return text


def apply_form(config: NodeConfig, form: etree._Element, limit: int) -> NodeConfig:
    """`config` changed by the fields of a submitted node_config form; unknown fields are ignored,
    invalid values are not-acceptable."""
    changes: dict[str, object] = {}
    for var, raw in forms.values(form).items():
        spec = _FIELDS.get(var)
        if spec is not None:
            changes[spec.attr] = _parse(var, spec, raw, limit)
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def unmet_preconditions(config: NodeConfig, form: etree._Element, limit: int) -> list[str]:
    """The publish-options fields whose values differ from the node's configuration."""
    unmet: list[str] = []
    for var, raw in forms.values(form).items():
        if var == "FORM_TYPE":
            continue
        spec = _FIELDS.get(var)
        if spec is None:
            unmet.append(var)
            continue
        try:
            wanted = _parse(var, spec, raw, limit)
        except StanzaError:
            unmet.append(var)
            continue
        if wanted != getattr(config, spec.attr):
            unmet.append(var)
    return unmet


@dataclass(frozen=True, slots=True)
class SubscribeOptions:
    """Per-subscription options (XEP-0060 §6.3)."""

    deliver: bool = True
    include_body: bool = False

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SubscribeOptions:
        stored = json.loads(text or "{}")
        return cls(**{f.name: stored[f.name] for f in dataclasses.fields(cls) if f.name in stored})


_OPTION_FIELDS: dict[str, tuple[str, str]] = {
    "pubsub#deliver": ("deliver", "Receive notification messages"),
    "pubsub#include_body": ("include_body", "Receive a message body in addition to the payload"),
}


def options_form(options: SubscribeOptions) -> etree._Element:
    fields = [
        Field(var, "boolean", ("1" if getattr(options, attr) else "0",), label)
        for var, (attr, label) in _OPTION_FIELDS.items()
    ]
    return forms.build(SUBSCRIBE_OPTIONS, fields)


def apply_options(options: SubscribeOptions, form: etree._Element) -> SubscribeOptions:
    changes: dict[str, bool] = {}
    for var, raw in forms.values(form).items():
        found = _OPTION_FIELDS.get(var)
        if found is None:
            continue
        try:
            changes[found[0]] = forms.parse_bool(raw[0] if raw else "")
        except ValueError:
            raise StanzaError.bad_request(f"{var} must be a boolean",
                                          app_element=_invalid_options()) from None
    return dataclasses.replace(options, **changes)


def _invalid_options() -> etree._Element:
    return etree.Element(f"{{{NS_PUBSUB}#errors}}invalid-options")
