"""The keys of parlour.toml that administrators change while the server runs (console, API)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.catalog import builtin_schema, parse_config
from appliance.config import Config, ConfigError, spec
from appliance.config.edit import set_key
from appliance.services.errors import ServiceError, audit
from appliance.util.files import write_atomically
from appliance.util.i18n import _, lazy

Reload = Callable[[Config], Awaitable[list[str]]]


# What the console shows for each key: a label and a line of help, in plain words (translated when shown).
LABELS: dict[str, tuple[str, str]] = {
    "modules.register.policy": (lazy("Who may create accounts"), lazy(
        "closed: only administrators (the console, the CLI); invite: people with an invitation link; open: "
        "anyone, from their app.")),
    "modules.register.min_password_length": (lazy("Shortest password"), lazy(
        "New passwords must have at least this many characters.")),
    "console.invitations": (lazy("Invitation links"), lazy(
        "Administrators may create links that let someone make an account.")),
    "console.invitation_lifetime": (lazy("Invitation links stay valid for"), lazy(
        "For example 7d (seven days) or 12h.")),
    "console.language": (lazy("Language of the web pages"), lazy(
        "auto follows each visitor's browser.")),
    "modules.offline.max_messages": (lazy("Messages kept for someone offline"), lazy(
        "Older ones are not stored once a user has this many waiting.")),
    "logging.level": (lazy("Log detail"), lazy(
        "info suits everyday use; debug shows much more, for finding a problem.")),
    "server.admins": (lazy("Administrators"), lazy(
        "Addresses of the accounts that may use this console, separated by commas.")),
    "modules.mam.retention": (lazy("Keep message history for"), lazy(
        "For example 365d; 0 keeps it forever.")),
    "modules.upload.quota": (lazy("Storage for shared files, per user"), lazy(
        "For example 1GiB or 500MiB.")),
    "c2s.require_encryption": (lazy("Require encrypted connections"), lazy(
        "Apps must use TLS; leave it on.")),
    "federation.enabled": (lazy("Talk to users of other XMPP servers"), lazy(
        "Off keeps everyone on this server only.")),
    "federation.mode": (lazy("Which other servers"), lazy(
        "blocklist: all but the blocked ones (Federation page); allowlist: only the allowed domains below.")),
    "federation.allowed_domains": (lazy("Allowed domains"), lazy(
        "In allowlist mode, the only other servers users here talk to, separated by commas.")),
    "federation.silent_drop": (lazy("Drop refused messages silently"), lazy(
        "Off tells the sender why a message was refused.")),
}


@dataclass(frozen=True, slots=True)
class Setting:
    """A key the console edits (the ones setup writes), with its schema entry."""

    table: str
    key: spec.Key
    model: type  # the dataclass holding the key (a module's options for modules.*)

    @property
    def name(self) -> str:
        return f"{self.table}.{self.key.name}"

    @property
    def label(self) -> str:
        return _(LABELS[self.name][0]) if self.name in LABELS else self.name

    @property
    def help(self) -> str:
        return _(LABELS[self.name][1]) if self.name in LABELS else self.key.doc


def field_problem(setting: Setting, value: object) -> str | None:
    """Why a form value is refused, in the visitor's language; None when the key's kind accepts it."""
    kind = setting.key.kind
    try:
        kind.convert(list(value) if isinstance(value, tuple) else value)
    except spec.Invalid:
        pass
    else:
        return None
    if isinstance(kind, spec.Int):
        return _("Enter a whole number from %(lo)s to %(hi)s.", lo=kind.lo, hi=kind.hi)
    if isinstance(kind, spec.Duration):
        return _("Enter a time such as 30d, 12h or 90m.")
    if isinstance(kind, spec.Size):
        return _("Enter a size such as 500MiB or 2GiB.")
    if isinstance(kind, spec.Choice):
        return _("Choose one of the listed values.")
    if isinstance(kind, spec.ListOf) and isinstance(value, list):
        for entry in value:
            try:
                kind.item.convert(entry)
            except spec.Invalid:
                return _("%(entry)s is not valid here.", entry=entry)
    return _("This value is not valid here.")


def form_value(setting: Setting, raw: str | None) -> object:
    """A form field as the TOML value for its key (the loader then validates it)."""
    kind = setting.key.kind
    if isinstance(kind, spec.Bool):
        return raw in ("on", "true", "1", "yes")
    raw = (raw or "").strip()
    if isinstance(kind, spec.Int):
        try:
            return int(raw)
        except ValueError:
            raise ServiceError(_("%(name)s: %(allowed)s", name=setting.name, allowed=kind.allowed())) from None
    if isinstance(kind, spec.ListOf):
        return [item.strip() for item in raw.replace("\n", ",").split(",") if item.strip()]
    if isinstance(kind, spec.Size | spec.Duration) and raw.isdigit():
        return int(raw)
    return raw


# Keys applied live by a reload; the others are written and need a restart.
SETTING_NAMES = (
    "modules.register.policy", "modules.register.min_password_length", "console.invitations",
    "console.invitation_lifetime", "modules.invites.allow_users", "console.language", "modules.offline.max_messages",
    "logging.level",
    "server.admins", "modules.mam.retention", "modules.upload.quota", "c2s.require_encryption",
    "federation.enabled", "federation.mode", "federation.allowed_domains", "federation.silent_drop",
)
# Keys other services change through `apply` with a page of their own (not on the settings page).
SERVICE_KEYS = ("federation.blocked_domains",)


def editable(names: tuple[str, ...] = SETTING_NAMES) -> list[Setting]:
    schema = builtin_schema()
    out = []
    for name in names:
        table, _sep, key = name.rpartition(".")
        found = schema.table(table)
        entry = found.key(key) if found is not None else None
        if found is not None and entry is not None:  # a feature's keys appear once its module exists
            out.append(Setting(table, entry, found.model))
    return out


def parse_file_text(text: str, path: Path) -> Config:
    """Validate the text meant for `path` with the config loader (relative paths resolve beside it)."""
    return dataclasses.replace(parse_config(text, str(path)), source=path)


class Settings:
    """Reads the running configuration (`config`) and changes parlour.toml, then applies it (`reload`)."""

    def __init__(self, config: Callable[[], Config], reload: Reload) -> None:
        self.config = config
        self.reload = reload

    def current(self) -> list[tuple[Setting, str]]:
        """Each editable key with its current value as TOML."""
        config = self.config()
        host_modules = config.hosts[0].modules if config.hosts else None
        out = []
        for setting in editable():
            obj: Any = config
            if setting.table.startswith("modules.") and host_modules is not None:
                obj = host_modules.of(setting.model)
            else:
                for part in setting.table.split("."):
                    obj = getattr(obj, part)
            out.append((setting, setting.key.kind.to_toml(getattr(obj, setting.key.name))))
        return out

    async def apply(self, actor: str, values: dict[str, object]) -> list[str]:
        """Write changed keys into parlour.toml (validated first), then reload. Returns what needs a
        restart; raises ServiceError with the loader's problems when a value is refused."""
        path = self.config().source
        if path is None:
            raise ServiceError(_("This server runs without a configuration file (development run)."))
        known = {s.name: s for s in editable(SETTING_NAMES + SERVICE_KEYS)}
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        changed = []
        for name, value in values.items():
            setting = known.get(name)
            if setting is None:
                raise ServiceError(_("%(name)s cannot be changed here.", name=name))
            text = set_key(text, setting.table, setting.key.name, spec.toml_literal(value))
            changed.append(name)
        try:
            new = await asyncio.to_thread(parse_file_text, text, path)
        except ConfigError as exc:
            raise ServiceError("; ".join(p.split(": ", 1)[-1] for p in exc.problems)) from None
        await asyncio.to_thread(write_atomically, path, text)
        restart = await self.reload(new)
        audit.info("admin %s: changed settings %s", actor, ", ".join(changed) or "(none)")
        return restart


__all__ = ["LABELS", "Setting", "Settings", "editable", "field_problem", "form_value", "parse_file_text"]
