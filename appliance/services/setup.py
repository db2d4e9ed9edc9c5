"""First-run setup, shared by the web wizard and `parlour setup`: what setup decides becomes parlour.toml
(built as a TOML document with its comments, never by pasting strings) plus the first administrator.

`SetupService.complete()` validates the document with the config loader before anything is written,
creates the administrator on the database it was given, and only then writes the file, once, by rename.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tomlkit
from tomlkit.items import Table

from appliance.catalog import builtin_schema, open_database, open_stores, probe_database
from appliance.certs.store import CertificateError, CertificateStore
from appliance.config import Config, ConfigError
from appliance.config.model import LdapConfig
from appliance.config.spec import check_bare_jid, check_domain
from appliance.core.accounts import AccountExists, AccountService, WeakPassword
from appliance.services.settings import parse_file_text
from appliance.storage.api import AccountStore
from appliance.util.files import write_atomically
from appliance.util.i18n import _
from appliance.xmpp.jid import JID

Registration = Literal["invite", "open", "admin"]
CertificateChoice = Literal["acme", "local", "upload"]
REGISTRATIONS: tuple[str, ...] = ("invite", "open", "admin")
CERTIFICATES: tuple[str, ...] = ("acme", "local", "upload")

SETUP_PORT = 5280  # where setup mode serves the wizard
SETUP_INTERFACES = ("0.0.0.0", "::")

# who may create accounts → (modules.register.policy, console.invitations)
_REGISTRATION_KEYS: dict[str, tuple[str, bool]] = {
    "invite": ("closed", True),
    "open": ("open", True),
    "admin": ("closed", False),
}


class SetupError(ValueError):
    """An answer cannot be used; the message says which and why."""


@dataclass(slots=True)
class SetupAnswers:
    """Everything setup asks; defaults are what a small office wants."""

    domain: str = ""
    admin: str = "admin"  # local part, or a bare JID on `domain`
    password: str = ""
    language: str = "auto"
    certificate: CertificateChoice = "local"
    acme_email: str = ""  # "acme": the address Let's Encrypt writes to about expiring certificates
    certificate_file: Path | None = None  # "upload": stored PEM chain and key
    key_file: Path | None = None
    registration: Registration = "invite"
    group_chat: bool = True
    file_sharing: bool = True
    upload_quota_mb: int = 1024
    history_days: int = 365  # 0: keep no history
    federation: bool = False  # talk to users of other XMPP servers; off suits a LAN-only office
    calls: bool = True  # the built-in STUN/TURN server for audio and video calls
    ldap: LdapConfig | None = None  # the company directory, when the wizard's directory step set one up
    database_url: str = ""  # "": the embedded SQLite file; else a postgresql:// URL, checked live
    extra: dict[str, dict[str, object]] = field(default_factory=dict)  # more keys per table (listeners)

    def admin_jid(self) -> str:
        """The administrator's bare JID on the chosen domain."""
        local = self.admin.strip()
        if "@" not in local:
            local = f"{local}@{self.domain}"
        try:
            jid = check_bare_jid(local)
        except ValueError:
            raise SetupError(f"{self.admin!r} is not a usable account name") from None
        if JID.parse(jid).domain != check_domain(self.domain):
            raise SetupError(f"the administrator must be an account on {self.domain}")
        return jid


def _table(comment: str | None = None, **values: object) -> Table:
    table = tomlkit.table()
    if comment:
        table.comment(comment)
    for key, value in values.items():
        table[key] = value
    return table


def _schema_has(table: str, *keys: str) -> bool:
    """Whether the configuration schema has this table and keys (features land independently of setup)."""
    candidate = builtin_schema().table(table)
    return candidate is not None and all(candidate.key(k) is not None for k in keys)


def setup_document(answers: SetupAnswers, state_dir: Path) -> tomlkit.TOMLDocument:
    """The configuration setup writes: only what was decided, with comments that say why."""
    try:
        domain = check_domain(answers.domain)
    except ValueError:
        raise SetupError(f"{answers.domain!r} is not a valid server name") from None
    admin = answers.admin_jid()
    policy, invitations = _REGISTRATION_KEYS[answers.registration]
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Parlour configuration, written by setup on {dt.date.today().isoformat()}."))
    doc.add(tomlkit.comment("Reference: docs/configuration.md. The admin console edits some of these keys in place."))
    doc.add(tomlkit.nl())
    doc["server"] = _table(state_dir=str(state_dir), admins=[admin])
    doc.add(tomlkit.nl())
    _certificate(doc, answers)
    doc["console"] = _table(language=answers.language, invitations=invitations)
    doc["federation"] = _table(
        "Users of other XMPP servers: " + ("allowed (block domains with `parlour federation block`)."
                                           if answers.federation else "off, this server talks only to itself."),
        enabled=answers.federation)
    if _schema_has("turn", "enabled"):
        doc["turn"] = _table(
            "Audio and video calls through this server (STUN/TURN): " + (
                "on; open port 3478 (UDP and TCP) and UDP ports 49152-65535 in the firewall (docs/calls.md)."
                if answers.calls else "off."),
            enabled=answers.calls)
    if answers.ldap is not None:
        doc["ldap"] = _ldap_table(answers.ldap)
    if answers.database_url:
        doc["storage"] = _table("Data: in PostgreSQL (the embedded SQLite file is not used).",
                                url=answers.database_url)
    for name, keys in answers.extra.items():
        if name in doc:  # a table setup wrote itself: the extra keys go into it
            doc[name].update(keys)  # type: ignore[union-attr]
        else:
            doc[name] = _table(**keys)
    modules = _features(answers)
    modules["register"] = _table(policy=policy)
    doc["modules"] = modules
    hosts = tomlkit.table(is_super_table=True)
    hosts[domain] = tomlkit.table()
    doc["hosts"] = hosts
    return doc


def _ldap_table(ldap: LdapConfig) -> Table:
    """[ldap] as the directory step chose it (only the keys that differ from the defaults)."""
    defaults = LdapConfig()
    table = _table("Logins, vCards and shared groups from the company directory (docs/directory.md).", enabled=True)
    for key in ("uri", "starttls", "ca_file", "bind_dn", "bind_password", "base", "group_base", "user_filter",
                "user_attribute", "active_directory"):
        value = getattr(ldap, key)
        if value != getattr(defaults, key) and value is not None:
            table[key] = str(value) if isinstance(value, Path) else value
    return table


def _certificate(doc: tomlkit.TOMLDocument, answers: SetupAnswers) -> None:
    if answers.certificate == "upload":
        if answers.certificate_file is None or answers.key_file is None:
            raise SetupError("the uploaded certificate and key are missing")
        doc["tls"] = _table(certificate=str(answers.certificate_file), private_key=str(answers.key_file))
    elif answers.certificate == "acme" and _schema_has("acme", "enabled", "email", "agree_tos"):
        doc.add(tomlkit.comment("Certificate: Let's Encrypt, requested and renewed automatically."))
        doc["acme"] = _table(enabled=True, email=answers.acme_email, agree_tos=True)
    elif answers.certificate == "acme":
        doc.add(tomlkit.comment("Certificate: Let's Encrypt was chosen; until ACME is available the local CA's "
                                "is used."))
    else:
        doc.add(tomlkit.comment("Certificate: made by Parlour's local certificate authority (trust certs/ca.pem)."))


def _features(answers: SetupAnswers) -> Table:
    """[modules] for group chat, file sharing and history; a feature whose options the schema lacks is
    kept as a TODO comment, so the choice is not lost."""
    modules = tomlkit.table()
    disabled: list[str] = []
    tables: dict[str, Table] = {}
    comments: list[str] = []

    def feature(module: str, enabled: bool, what: str, key: str | None = None, value: object = None) -> None:
        if not _schema_has(f"modules.{module}", *((key,) if key else ())):
            state = "enabled" if enabled else "turned off"
            comments.append(f"TODO({module}): {what} was {state} in setup; configure [modules.{module}] "
                            "once the module exists.")
        elif not enabled:
            disabled.append(module)
        elif key is not None:
            tables[module] = _table(**{key: value})

    feature("muc", answers.group_chat, "group chat")
    feature("upload", answers.file_sharing, f"file sharing (quota {answers.upload_quota_mb} MiB per user)",
            "quota", f"{answers.upload_quota_mb}MiB")
    feature("mam", answers.history_days > 0, f"message history ({answers.history_days} days)",
            "retention", f"{answers.history_days}d")
    modules["disabled"] = disabled
    for comment in comments:
        modules.add(tomlkit.comment(comment))
    for name, table in tables.items():
        modules[name] = table
    return modules


def store_uploaded_certificate(state_dir: Path, chain: bytes, key: bytes) -> tuple[Path, Path]:
    """Keep an uploaded PEM chain and key (key 0600) after checking that they belong together."""
    folder = state_dir / "certs" / "uploaded"
    folder.mkdir(parents=True, exist_ok=True)
    chain_path, key_path = folder / "chain.pem", folder / "key.pem"
    chain_path.write_bytes(chain)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    try:
        CertificateStore(state_dir).add(chain_path, key_path)
    except CertificateError as exc:
        raise SetupError(_("The certificate cannot be used: %(why)s", why=str(exc))) from None
    return chain_path, key_path


async def check_database(url: str) -> str:
    """Connect to a PostgreSQL URL the wizard was given, changing nothing: what was found, or `SetupError`
    saying why it cannot be used."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise SetupError(_("Enter a PostgreSQL address like postgresql://parlour@db.example.org/parlour."))
    try:
        name, version, latest = await asyncio.to_thread(probe_database, url)
    except Exception as exc:  # psycopg's errors (refused, unknown host, authentication): shown as they are
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SetupError(_("Parlour cannot connect to this database: %(why)s", why=why)) from None
    if version > latest:
        raise SetupError(_("%(db)s holds the data of a newer Parlour; use another database.", db=name))
    if version:
        return _("Connected to %(db)s. It holds a Parlour database already: its accounts are kept.", db=name)
    return _("Connected to %(db)s. Parlour will create its tables there.", db=name)


class SetupService:
    """Completes a setup into `config_path`, creating the administrator in the open `accounts` store."""

    def __init__(self, *, config_path: Path, state_dir: Path, accounts: AccountStore) -> None:
        self.config_path = config_path
        self.state_dir = state_dir
        self.accounts = accounts

    async def complete(self, answers: SetupAnswers) -> Config:
        """Validate, create the administrator, then write parlour.toml; returns the configuration."""
        text = tomlkit.dumps(setup_document(answers, self.state_dir))
        try:
            config = parse_file_text(text, self.config_path)
        except ConfigError as exc:
            raise SetupError("; ".join(exc.problems)) from exc
        admin = JID.parse(answers.admin_jid())
        if answers.database_url:  # the administrator goes where the server will keep its accounts
            await check_database(answers.database_url)
            db = await open_database(self.state_dir, config.storage)
            try:
                stores = open_stores(db, self.state_dir)
                await _create_admin(AccountService(stores.accounts, iterations=config.limits.scram_iterations),
                                    admin, answers.password)
            finally:
                await db.close()
        else:
            accounts = AccountService(self.accounts, iterations=config.limits.scram_iterations)
            await _create_admin(accounts, admin, answers.password)
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(write_atomically, self.config_path, text)
        return config


async def _create_admin(accounts: AccountService, admin: JID, password: str) -> None:
    try:
        await accounts.create(admin, password)
    except WeakPassword as exc:
        raise SetupError(str(exc)) from exc
    except AccountExists:
        # A setup interrupted after this step, or re-run: the account is kept with the new password.
        await accounts.set_password(admin, password)


__all__ = ["CERTIFICATES", "REGISTRATIONS", "SETUP_INTERFACES", "SETUP_PORT", "SetupAnswers", "SetupError",
           "SetupService", "check_database", "setup_document", "store_uploaded_certificate"]
