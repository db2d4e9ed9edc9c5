"""What administrators can do, once: the console's pages and the JSON API both call this.

Every change is logged on "appliance.admin" with the administrator who made it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance import __version__
from appliance.config import ConfigError, spec
from appliance.config.edit import set_key
from appliance.core.accounts import AccountExists, AccountNotFound, WeakPassword
from appliance.platform.paths import database_path
from appliance.util.files import write_atomically
from appliance.web.admin.tokens import ApiToken, Invitation, TokenFile
from appliance.web.i18n import _, lazy
from appliance.xmpp.jid import JID, JIDError

if TYPE_CHECKING:
    from appliance.app import Parlour as Server

audit = logging.getLogger("appliance.admin")
audit.setLevel(logging.INFO)  # the audit trail is kept even when the log level is "warning"

WEAK_PASSWORD = lazy("This password cannot be used: it needs at least 8 characters and no control characters.")


class AdminError(ValueError):
    """An administrative request cannot be done; the message is shown to the administrator."""


@dataclass(frozen=True, slots=True)
class Setting:
    """A key the console edits (the ones setup writes), with its schema entry."""

    table: str
    key: spec.Key

    @property
    def name(self) -> str:
        return f"{self.table}.{self.key.name}"


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
            raise AdminError(_("%(name)s: %(allowed)s", name=setting.name, allowed=kind.allowed())) from None
    if isinstance(kind, spec.ListOf):
        return [item.strip() for item in raw.replace("\n", ",").split(",") if item.strip()]
    if isinstance(kind, spec.Size | spec.Duration) and raw.isdigit():
        return int(raw)
    return raw


# Keys applied live by Server.reload; the others are written and need a restart.
SETTING_NAMES = (
    "modules.register.policy", "modules.register.min_password_length", "console.invitations",
    "console.invitation_lifetime", "console.language", "modules.offline.max_messages", "logging.level",
    "server.admins", "modules.mam.retention", "modules.upload.quota", "c2s.require_encryption",
)


def _settings() -> list[Setting]:
    tables = {t.path: t for top in spec.SECTIONS for t in top.walk()}
    out = []
    for name in SETTING_NAMES:
        table, _, key = name.rpartition(".")
        found = tables.get(table)
        entry = found.key(key) if found is not None else None
        if entry is not None:  # a feature's keys appear once its module exists
            out.append(Setting(table, entry))
    return out


@dataclass(frozen=True, slots=True)
class Status:
    version: str
    uptime: float
    sessions: int
    accounts: int
    messages_today: int
    certificates: list[Any]
    database_size: int
    hosts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    jid: str
    available: bool
    priority: int
    transport: str
    address: str


class AdminService:
    """Administrative operations on one running server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.tokens = TokenFile(server.config.server.state_dir)
        self._day = dt.date.today()
        self._messages_at_midnight = 0

    # -- who is an administrator ----------------------------------------------------------------

    def is_admin(self, jid: str) -> bool:
        return jid in self.server.config.server.admins

    # -- status ---------------------------------------------------------------------------------

    def messages_today(self) -> int:
        total = self.server.stats.get("messages_in", 0)
        today = dt.date.today()
        if today != self._day:
            self._day, self._messages_at_midnight = today, total
        return total - self._messages_at_midnight

    def database_size(self) -> int:
        path = database_path(self.server.config.server.state_dir)
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())

    async def status(self) -> Status:
        accounts = self.server.accounts
        assert accounts is not None
        total = 0
        for host in self.server.hosts:
            total += await accounts.count(host)
        certs = self.server.certs.info() if self.server.certs is not None else []
        return Status(
            version=__version__, uptime=time.time() - self.server.started_at, sessions=len(self.server.sessions),
            accounts=total, messages_today=self.messages_today(), certificates=certs,
            database_size=await asyncio.to_thread(self.database_size), hosts=tuple(self.server.hosts),
        )

    # -- accounts -------------------------------------------------------------------------------

    def _account(self, text: str) -> JID:
        try:
            jid = JID.parse(text.strip())
        except JIDError:
            raise AdminError(self._not_an_account(text)) from None
        if jid.local is None or jid.resource is not None:
            raise AdminError(self._not_an_account(text))
        if jid.domain not in self.server.hosts:
            raise AdminError(_("%(host)s is not a domain of this server.", host=jid.domain))
        return jid

    def _not_an_account(self, text: str) -> str:
        return _("%(text)s is not an account address like alice@%(host)s.", text=text, host=self.default_host())

    def account_jid(self, text: str) -> JID:
        """A bare account JID from "alice" (on the first host) or "alice@host"."""
        text = text.strip()
        return self._account(text if "@" in text else f"{text}@{self.default_host()}")

    def default_host(self) -> str:
        return next(iter(self.server.hosts))

    async def users(self, query: str = "", host: str | None = None, limit: int = 200) -> list[str]:
        accounts = self.server.accounts
        assert accounts is not None
        out: list[str] = []
        for name in [host] if host else list(self.server.hosts):
            out += [f"{u}@{name}" for u in await accounts.list(name, prefix=query.strip(), limit=limit)]
        return out[:limit]

    async def create_user(self, actor: str, account: str, password: str) -> str:
        jid = self.account_jid(account)
        assert self.server.accounts is not None
        try:
            await self.server.accounts.create(jid, password)
        except AccountExists:
            raise AdminError(_("%(jid)s already exists.", jid=jid)) from None
        except WeakPassword:
            raise AdminError(_(WEAK_PASSWORD)) from None
        audit.info("admin %s: created account %s", actor, jid)
        return str(jid)

    async def reset_password(self, actor: str, account: str, password: str) -> None:
        jid = self.account_jid(account)
        assert self.server.accounts is not None
        try:
            await self.server.accounts.set_password(jid, password)
        except AccountNotFound:
            raise AdminError(_("%(jid)s does not exist.", jid=jid)) from None
        except WeakPassword:
            raise AdminError(_(WEAK_PASSWORD)) from None
        audit.info("admin %s: reset the password of %s", actor, jid)

    async def delete_user(self, actor: str, account: str) -> None:
        jid = self.account_jid(account)
        if str(jid) == actor:
            raise AdminError(_("You cannot delete your own account while logged in with it."))
        assert self.server.accounts is not None
        self._close_sessions(jid)
        try:
            await self.server.accounts.delete(jid)
        except AccountNotFound:
            raise AdminError(_("%(jid)s does not exist.", jid=jid)) from None
        audit.info("admin %s: deleted account %s", actor, jid)
        if self.is_admin(str(jid)):
            await self._drop_admin(actor, str(jid))

    async def _drop_admin(self, actor: str, jid: str) -> None:
        """Rights are granted by name, so a deleted administrator's name leaves server.admins and its API
        tokens are revoked: an account made later under that name starts without rights."""
        for token in self.tokens.api_tokens():
            if token.owner == jid:
                await self.tokens.revoke_api_token(token.id)
        admins = [a for a in self.server.config.server.admins if a != jid]
        try:
            await self.apply_settings(actor, {"server.admins": admins})
        except AdminError as exc:
            # Still safe: self-service sign-up refuses names in server.admins (register, invitations).
            audit.warning("admin %s: %s stays in server.admins (%s); remove it by hand", actor, jid, exc)
            return
        audit.info("admin %s: removed %s from server.admins with its account", actor, jid)

    def _close_sessions(self, jid: JID) -> int:
        sessions = self.server.sessions.resources(jid)
        for session in sessions:
            session.close("policy-violation", "Disconnected by an administrator")
        return len(sessions)

    async def disconnect(self, actor: str, account: str) -> int:
        jid = self.account_jid(account)
        count = self._close_sessions(jid)
        audit.info("admin %s: disconnected %s (%d sessions)", actor, jid, count)
        return count

    def sessions(self) -> list[SessionInfo]:
        out = []
        for session in self.server.sessions.all():
            transport = getattr(session, "transport", None)
            kind = type(transport).__name__.removesuffix("Transport").lower() if transport else ""
            peer = getattr(transport, "peer", None) or ""
            address = peer[0] if isinstance(peer, tuple) and peer else str(peer)
            out.append(SessionInfo(str(session.jid), session.available, session.priority,
                                   kind.replace("xmpptcpprotocol", "tcp"), address))
        return sorted(out, key=lambda s: s.jid)

    # -- invitations ----------------------------------------------------------------------------

    async def create_invitation(self, actor: str, host: str | None = None) -> tuple[str, Invitation]:
        console = self.server.config.console
        if not console.invitations:
            raise AdminError(_("Invitations are turned off (console.invitations = false)."))
        host = host or self.default_host()
        if host not in self.server.hosts:
            raise AdminError(_("%(host)s is not a domain of this server.", host=host))
        secret, record = await self.tokens.new_invitation(host, actor, console.invitation_lifetime)
        audit.info("admin %s: created invitation %s for %s", actor, record.id, host)
        return secret, record

    def invitations(self) -> list[Invitation]:
        return self.tokens.invitations()

    async def revoke_invitation(self, actor: str, invitation_id: str) -> None:
        if not await self.tokens.revoke_invitation(invitation_id):
            raise AdminError(_("There is no invitation %(id)s.", id=invitation_id))
        audit.info("admin %s: revoked invitation %s", actor, invitation_id)

    def open_invitation(self, secret: str) -> Invitation | None:
        """The still valid invitation behind a link, else None."""
        record = self.tokens.find_invitation(secret)
        if record is None or not record.valid(time.time()) or not self.server.config.console.invitations:
            return None
        return record

    async def accept_invitation(self, secret: str, username: str, password: str) -> str:
        record = self.open_invitation(secret)
        if record is None:
            raise AdminError(_("This invitation is not valid (any more)."))
        jid = self._account(f"{username.strip()}@{record.host}")
        if self.is_admin(str(jid)):  # reserved: see delete_user
            raise AdminError(_("%(jid)s is taken; choose another name.", jid=jid))
        assert self.server.accounts is not None
        # Claimed before the (slow) account creation: concurrent redemptions of one link make one account.
        if await self.tokens.claim_invitation(secret, str(jid), time.time()) is None:
            raise AdminError(_("This invitation is not valid (any more)."))
        created = False
        try:
            await self.server.accounts.create(jid, password)
            created = True
        except AccountExists:
            raise AdminError(_("%(jid)s is taken; choose another name.", jid=jid)) from None
        except WeakPassword:
            raise AdminError(_(WEAK_PASSWORD)) from None
        finally:
            if not created:
                await self.tokens.release_invitation(record)
        audit.info("invitation %s (by %s) used to create %s", record.id, record.creator, jid)
        return str(jid)

    # -- API tokens -----------------------------------------------------------------------------

    async def create_api_token(self, actor: str, label: str) -> tuple[str, ApiToken]:
        secret, record = await self.tokens.new_api_token(actor, label.strip() or "API token")
        audit.info("admin %s: created API token %s (%s)", actor, record.id, record.label)
        return secret, record

    def api_tokens(self) -> list[ApiToken]:
        return self.tokens.api_tokens()

    async def revoke_api_token(self, actor: str, token_id: str) -> None:
        if not await self.tokens.revoke_api_token(token_id):
            raise AdminError(_("There is no API token %(id)s.", id=token_id))
        audit.info("admin %s: revoked API token %s", actor, token_id)

    def api_token_owner(self, secret: str) -> tuple[str | None, str]:
        """(administrator, "") for a usable token, else (None, why not)."""
        record = self.tokens.find_api_token(secret)
        if record is None:
            return None, "unknown or revoked API token"
        if not self.is_admin(record.owner):
            return None, f"the token's owner {record.owner} is no longer an administrator (server.admins)"
        return record.owner, ""

    # -- settings -------------------------------------------------------------------------------

    def settings(self) -> list[tuple[Setting, str]]:
        """Each editable key with its current value as TOML."""
        config = self.server.config
        host_modules = config.hosts[0].modules if config.hosts else None
        out = []
        for setting in _settings():
            obj: Any = config
            parts = setting.table.split(".")
            if parts[0] == "modules" and host_modules is not None:
                obj, parts = host_modules, parts[1:]
            for part in parts:
                obj = getattr(obj, part)
            out.append((setting, setting.key.kind.to_toml(getattr(obj, setting.key.name))))
        return out

    async def apply_settings(self, actor: str, values: dict[str, object]) -> list[str]:
        """Write changed keys into parlour.toml (validated first), then reload. Returns what needs a
        restart; raises AdminError with the loader's problems when a value is refused."""
        path = self.server.config.source
        if path is None:
            raise AdminError(_("This server runs without a configuration file (development run)."))
        known = {s.name: s for s in _settings()}
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        changed = []
        for name, value in values.items():
            setting = known.get(name)
            if setting is None:
                raise AdminError(_("%(name)s cannot be changed here.", name=name))
            text = set_key(text, setting.table, setting.key.name, spec.toml_literal(value))
            changed.append(name)
        from appliance.config import load_config
        from appliance.web.setup.answers import validate

        try:
            await asyncio.to_thread(validate, text, path)
        except ConfigError as exc:
            raise AdminError("; ".join(p.split(": ", 1)[-1] for p in exc.problems)) from None
        await asyncio.to_thread(write_atomically, path, text)
        new = await asyncio.to_thread(load_config, path)
        restart = await self.server.reload(new)
        audit.info("admin %s: changed settings %s", actor, ", ".join(changed) or "(none)")
        return restart

    # -- logs -----------------------------------------------------------------------------------

    def logs(self, contains: str = "", level: str = "", limit: int = 500) -> list[Any]:
        buffer = self.server.log_buffer
        return buffer.lines(contains=contains, min_level=level, limit=limit) if buffer is not None else []


__all__ = ["AdminError", "AdminService", "SessionInfo", "Setting", "Status", "form_value"]
