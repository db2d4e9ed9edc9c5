"""What setup decides, written as parlour.toml, plus the first administrator.

The wizard and `parlour setup` both end in `complete()`: the file is validated by the config loader
before it replaces anything, the administrator is created through AccountService, and only then does
the new file appear (atomically, by rename).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from appliance.catalog import builtin_schema, load_config
from appliance.config import Config, ConfigError
from appliance.config.spec import check_bare_jid, check_domain, toml_key, toml_literal
from appliance.core.accounts import AccountService
from appliance.util.files import write_atomically
from appliance.xmpp.jid import JID

Registration = Literal["invite", "open", "admin"]
CertificateChoice = Literal["acme", "local", "upload"]
REGISTRATIONS: tuple[str, ...] = ("invite", "open", "admin")
CERTIFICATES: tuple[str, ...] = ("acme", "local", "upload")

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


def render_toml(answers: SetupAnswers, state_dir: Path) -> str:
    """The configuration file setup writes: only what was decided, with comments that say why."""
    try:
        domain = check_domain(answers.domain)
    except ValueError:
        raise SetupError(f"{answers.domain!r} is not a valid server name") from None
    admin = answers.admin_jid()
    policy, invitations = _REGISTRATION_KEYS[answers.registration]
    today = dt.date.today().isoformat()
    lines = [
        f"# Parlour configuration, written by setup on {today}.",
        "# Reference: docs/configuration.md. The admin console edits some of these keys in place.",
        "",
        "[server]",
        f"state_dir = {toml_literal(str(state_dir))}",
        f"admins = {toml_literal([admin])}",
        "",
    ]
    if answers.certificate == "upload":
        if answers.certificate_file is None or answers.key_file is None:
            raise SetupError("the uploaded certificate and key are missing")
        lines += ["[tls]", f"certificate = {toml_literal(str(answers.certificate_file))}",
                  f"private_key = {toml_literal(str(answers.key_file))}", ""]
    elif answers.certificate == "acme":
        if _spec_has("acme", "enabled", "email", "agree_tos"):
            lines += ["# Certificate: Let's Encrypt, requested and renewed automatically.", "[acme]",
                      "enabled = true", f"email = {toml_literal(answers.acme_email)}", "agree_tos = true", ""]
        else:
            lines += ["# Certificate: Let's Encrypt was chosen; until ACME is available the local CA's is used.",
                      "# TODO(acme): turn on automatic certificates once the [acme] section exists.", ""]
    else:
        lines += ["# Certificate: made by Parlour's local certificate authority (trust certs/ca.pem).", ""]
    lines += ["[console]", f"language = {toml_literal(answers.language)}",
              f"invitations = {toml_literal(invitations)}", ""]
    for table, keys in answers.extra.items():
        lines.append(f"[{table}]")
        lines += [f"{toml_key(k)} = {toml_literal(v)}" for k, v in keys.items()]
        lines.append("")
    lines += _feature_lines(answers)
    lines += ["[modules.register]", f"policy = {toml_literal(policy)}", ""]
    lines += [f"[hosts.{toml_key(domain)}]", ""]
    return "\n".join(lines)


def _spec_has(table: str, *keys: str) -> bool:
    """Whether the configuration schema has these keys (features land independently of setup)."""
    candidate = builtin_schema().table(table)
    return candidate is not None and all(candidate.key(k) is not None for k in keys)


def _module_exists(name: str) -> bool:
    from appliance.catalog import BUILTIN

    return any(m.name == name for m in BUILTIN)


def _feature_lines(answers: SetupAnswers) -> list[str]:
    """[modules] for group chat, file sharing and history; a feature whose module does not exist yet
    is kept as a TODO comment, so the choice is not lost."""
    disabled: list[str] = []
    tables: list[str] = []
    comments: list[str] = []

    def feature(module: str, enabled: bool, what: str, key: str | None = None, value: object = None) -> None:
        if not _module_exists(module) or (key is not None and not _spec_has(f"modules.{module}", key)):
            state = "enabled" if enabled else "turned off"
            comments.append(f"# TODO({module}): {what} was {state} in setup; configure [modules.{module}] "
                            "once the module exists.")
        elif not enabled:
            disabled.append(module)
        elif key is not None:
            tables.extend([f"[modules.{module}]", f"{key} = {toml_literal(value)}", ""])

    feature("muc", answers.group_chat, "group chat")
    feature("upload", answers.file_sharing, f"file sharing (quota {answers.upload_quota_mb} MiB per user)",
            "quota", f"{answers.upload_quota_mb}MiB")
    feature("mam", answers.history_days > 0, f"message history ({answers.history_days} days)",
            "retention", f"{answers.history_days}d")
    lines = ["[modules]", f"disabled = {toml_literal(disabled)}", "", *tables]
    return lines + comments + ([""] if comments else [])


def validate(text: str, config_path: Path) -> Config:
    """Check the file's text with the config loader, from a temporary file beside the target."""
    config_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".parlour-", suffix=".toml", dir=config_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return load_config(Path(tmp))
    finally:
        Path(tmp).unlink(missing_ok=True)


async def complete(answers: SetupAnswers, config_path: Path, state_dir: Path,
                   accounts: AccountService | None = None) -> Config:
    """Validate, create the administrator, then write parlour.toml; returns the loaded config.

    `accounts` is an open AccountService on the state folder's database; without one, the database
    is opened for the duration of this call.
    """
    text = render_toml(answers, state_dir)
    try:
        config = validate(text, config_path)
    except ConfigError as exc:
        raise SetupError("; ".join(exc.problems)) from exc
    admin = JID.parse(answers.admin_jid())
    if accounts is None:
        from appliance.cli._services import open_accounts

        async with open_accounts(config) as service:
            await _create_admin(service, admin, answers.password)
    else:
        await _create_admin(accounts, admin, answers.password)
    write_atomically(config_path, text)
    return load_config(config_path)


async def _create_admin(accounts: AccountService, admin: JID, password: str) -> None:
    from appliance.core.accounts import AccountExists, WeakPassword

    try:
        await accounts.create(admin, password)
    except WeakPassword as exc:
        raise SetupError(str(exc)) from exc
    except AccountExists:
        # A setup interrupted after this step, or re-run: the account is kept with the new password.
        await accounts.set_password(admin, password)


__all__ = ["CERTIFICATES", "REGISTRATIONS", "SetupAnswers", "SetupError", "complete", "render_toml",
           "validate"]
