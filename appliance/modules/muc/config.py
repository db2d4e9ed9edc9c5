"""A room's configuration: the muc#roomconfig form (XEP-0045 §10.2, §15.5.3) and its JSON for storage."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from lxml import etree

from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError

ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
ROLES = ("moderator", "participant", "visitor")
WHOIS = ("moderators", "anyone")
ALLOW_PM = ("anyone", "participants", "moderators", "none")
MAX_USERS_CHOICES = ("10", "20", "30", "50", "100", "200", "500", "1000")


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """Everything an owner can set; defaults come from [modules.muc.default_room]."""

    name: str = ""
    description: str = ""
    language: str = ""
    public: bool = True
    persistent: bool = False
    members_only: bool = False
    moderated: bool = False
    password: str = ""  # empty: no password
    whois: str = "moderators"
    max_occupants: int = 200
    history_length: int = 20
    change_subject: bool = False  # participants may change the subject
    allow_invites: bool = False
    allow_pm: str = "anyone"
    archive: bool = True  # muc#roomconfig_enablelogging
    get_member_list: tuple[str, ...] = ROLES
    presence_broadcast: tuple[str, ...] = ROLES
    occupant_salt: str = ""  # secret behind occupant ids (XEP-0421); not in the form

    @property
    def non_anonymous(self) -> bool:
        return self.whois == "anyone"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, base: RoomConfig) -> RoomConfig:
        """A stored configuration; keys it lacks (older versions) come from `base`."""
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return replace(base, **values)


def _bool(value: bool) -> tuple[str, ...]:
    return ("1" if value else "0",)


def config_form(config: RoomConfig, owners: list[str], admins: list[str], *, max_occupants: int) -> etree._Element:
    """The form an owner fills in, showing the current values."""
    F = forms.Field
    users = tuple(v for v in MAX_USERS_CHOICES if int(v) <= max_occupants) or (str(max_occupants),)
    return forms.build(ROOMCONFIG, [
        F("muc#roomconfig_roomname", "text-single", (config.name,), "Name"),
        F("muc#roomconfig_roomdesc", "text-single", (config.description,), "Description"),
        F("muc#roomconfig_lang", "text-single", (config.language,), "Language of discussion"),
        F("muc#roomconfig_publicroom", "boolean", _bool(config.public), "List the room publicly"),
        F("muc#roomconfig_persistentroom", "boolean", _bool(config.persistent), "Keep the room when empty"),
        F("muc#roomconfig_membersonly", "boolean", _bool(config.members_only), "Only members may enter"),
        F("muc#roomconfig_moderatedroom", "boolean", _bool(config.moderated), "Only occupants with voice speak"),
        F("muc#roomconfig_passwordprotectedroom", "boolean", _bool(bool(config.password)), "Password required"),
        F("muc#roomconfig_roomsecret", "text-private", (config.password,), "Password"),
        F("muc#roomconfig_whois", "list-single", (config.whois,), "Who may see real JIDs", WHOIS),
        F("muc#roomconfig_maxusers", "list-single", (str(config.max_occupants),), "Most occupants", users),
        F("muc#maxhistoryfetch", "text-single", (str(config.history_length),), "Messages shown to newcomers"),
        F("muc#roomconfig_changesubject", "boolean", _bool(config.change_subject), "Occupants may change the subject"),
        F("muc#roomconfig_allowinvites", "boolean", _bool(config.allow_invites), "Occupants may invite others"),
        F("muc#roomconfig_allowpm", "list-single", (config.allow_pm,), "Who may send private messages", ALLOW_PM),
        F("muc#roomconfig_enablelogging", "boolean", _bool(config.archive), "Archive messages"),
        F("muc#roomconfig_getmemberlist", "list-multi", config.get_member_list, "Roles that may get the member list",
          ROLES),
        F("muc#roomconfig_presencebroadcast", "list-multi", config.presence_broadcast,
          "Roles whose presence is broadcast", ROLES),
        F("muc#roomconfig_roomowners", "jid-multi", tuple(owners), "Owners"),
        F("muc#roomconfig_roomadmins", "jid-multi", tuple(admins), "Admins"),
    ], title="Room configuration")


@dataclass(frozen=True, slots=True)
class Submitted:
    """A submitted configuration form: the new configuration and owner/admin lists if it had them."""

    config: RoomConfig
    owners: tuple[str, ...] | None
    admins: tuple[str, ...] | None


def apply_form(config: RoomConfig, form: etree._Element, *, max_occupants: int, max_history: int) -> Submitted:
    """Read a submitted muc#roomconfig form over `config`; bad-request/not-acceptable on bad values."""
    if forms.form_type(form) not in (None, ROOMCONFIG):
        raise StanzaError.bad_request("Expected a muc#roomconfig form")
    values = forms.values(form)
    changes: dict[str, Any] = {}

    def one(var: str) -> str | None:
        got = values.get(var)
        return got[0] if got else None

    def boolean(var: str, attr: str) -> None:
        text = one(var)
        if text is not None:
            try:
                changes[attr] = forms.parse_bool(text)
            except ValueError:
                raise StanzaError.bad_request(f"{var} needs a boolean") from None

    def number(var: str, attr: str, ceiling: int) -> None:
        text = one(var)
        if text is None or not text.strip():
            return
        if text.strip() == "none":
            changes[attr] = ceiling
            return
        try:
            value = int(text)
        except ValueError:
            raise StanzaError.bad_request(f"{var} needs a number") from None
        if value < 0:
            raise StanzaError.not_acceptable(f"{var} cannot be negative")
        changes[attr] = min(value, ceiling)

    def choice(var: str, attr: str, allowed: tuple[str, ...]) -> None:
        text = one(var)
        if text is not None:
            if text not in allowed:
                raise StanzaError.not_acceptable(f"{var} must be one of {', '.join(allowed)}")
            changes[attr] = text

    for var, attr in (("muc#roomconfig_roomname", "name"), ("muc#roomconfig_roomdesc", "description"),
                      ("muc#roomconfig_lang", "language")):
        text = one(var)
        if text is not None:
            changes[attr] = text.strip()
    for var, attr in (("muc#roomconfig_publicroom", "public"), ("muc#roomconfig_persistentroom", "persistent"),
                      ("muc#roomconfig_membersonly", "members_only"),
                      ("muc#roomconfig_moderatedroom", "moderated"),
                      ("muc#roomconfig_changesubject", "change_subject"),
                      ("muc#roomconfig_allowinvites", "allow_invites"),
                      ("muc#roomconfig_enablelogging", "archive")):
        boolean(var, attr)
    number("muc#roomconfig_maxusers", "max_occupants", max_occupants)
    number("muc#maxhistoryfetch", "history_length", max_history)
    number("muc#roomconfig_historylength", "history_length", max_history)  # Prosody's name for it
    choice("muc#roomconfig_whois", "whois", WHOIS)
    choice("muc#roomconfig_allowpm", "allow_pm", ALLOW_PM)
    for var, attr in (("muc#roomconfig_getmemberlist", "get_member_list"),
                      ("muc#roomconfig_presencebroadcast", "presence_broadcast")):
        if var in values:
            roles = tuple(r for r in values[var] if r)
            if any(r not in ROLES for r in roles):
                raise StanzaError.not_acceptable(f"{var} takes the roles {', '.join(ROLES)}")
            changes[attr] = roles
    protected = one("muc#roomconfig_passwordprotectedroom")
    secret = one("muc#roomconfig_roomsecret")
    if secret is not None:
        changes["password"] = secret
    if protected is not None:
        try:
            if not forms.parse_bool(protected):
                changes["password"] = ""
        except ValueError:
            raise StanzaError.bad_request("muc#roomconfig_passwordprotectedroom needs a boolean") from None
        if forms.parse_bool(protected) and not changes.get("password", config.password):
            raise StanzaError.not_acceptable("A password-protected room needs a password")
    if changes.get("max_occupants", 1) < 1:
        raise StanzaError.not_acceptable("A room needs room for at least one occupant")
    owners = values.get("muc#roomconfig_roomowners")
    admins = values.get("muc#roomconfig_roomadmins")
    return Submitted(
        replace(config, **changes),
        tuple(j for j in owners if j) if owners is not None else None,
        tuple(j for j in admins if j) if admins is not None else None,
    )


def info_form(config: RoomConfig, occupants: int, subject: str) -> etree._Element:
    """The muc#roominfo extension of a room's disco#info (XEP-0045 §15.5.4)."""
    F = forms.Field
    return forms.build("http://jabber.org/protocol/muc#roominfo", [
        F("muc#roominfo_description", "text-single", (config.description,), "Description"),
        F("muc#roominfo_occupants", "text-single", (str(occupants),), "Number of occupants"),
        F("muc#roominfo_subject", "text-single", (subject,), "Current subject"),
        F("muc#roominfo_lang", "text-single", (config.language,), "Language of discussion"),
        F("muc#roomconfig_roomname", "text-single", (config.name,), "Name"),
        F("muc#maxhistoryfetch", "text-single", (str(config.history_length),), "Maximum history"),
        F("muc#roomconfig_allowinvites", "boolean", _bool(config.allow_invites), "Occupants may invite"),
        F("muc#roomconfig_changesubject", "boolean", _bool(config.change_subject), "Occupants may change the subject"),
    ], type_="result")
