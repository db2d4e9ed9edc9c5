"""The setup wizard's pages: one step per page, answers kept on the server, finished by `complete()`.

Only reachable with the one-time token (then a session cookie); every POST carries a CSRF token.
Once setup completes every handler answers 404, and setup mode then removes the whole application.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.config.spec import check_domain
from appliance.services.directory import CheckResult, DirectoryDesk, directory_settings
from appliance.services.errors import ServiceError
from appliance.services.setup import SetupAnswers, SetupError, check_database, store_uploaded_certificate
from appliance.services.setup_token import SetupToken
from appliance.util import i18n
from appliance.util.i18n import _
from appliance.web.pages import render
from appliance.web.setup.namecheck import NameCheck, check_name
from appliance.web.transport_security import https_url

COOKIE = "parlour_setup"
STEPS = ("language", "name", "certificate", "admin", "registration", "directory", "features", "database",
         "review")
STEP_TITLES = {
    "language": i18n.lazy("Language"),
    "name": i18n.lazy("Server name"),
    "certificate": i18n.lazy("Certificate"),
    "admin": i18n.lazy("Administrator"),
    "registration": i18n.lazy("Accounts"),
    "directory": i18n.lazy("Company directory"),
    "features": i18n.lazy("Features"),
    "database": i18n.lazy("Database"),
    "review": i18n.lazy("Review"),
}
MIN_PASSWORD = 8

Finish = Callable[[SetupAnswers], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class Wizard:
    """The state of one setup: its token, the visitors' sessions and the answers so far."""

    token: SetupToken
    state_dir: Path
    finish: Finish  # validates, writes the config, creates the admin; returns what the done page shows
    answers: SetupAnswers = field(default_factory=SetupAnswers)
    sessions: dict[str, str] = field(default_factory=dict)  # session id → CSRF token
    name_check: NameCheck | None = None
    directory_check: CheckResult | None = None  # the directory step's last live test
    database_check: str = ""  # what the last connection test found
    completed: bool = False


WIZARD = web.AppKey("wizard", Wizard)


def _gone() -> web.HTTPNotFound:
    return web.HTTPNotFound(text="404: Not Found")


def _session(request: web.Request) -> str | None:
    wizard = request.app[WIZARD]
    sid = request.cookies.get(COOKIE)
    return sid if sid and sid in wizard.sessions else None


def _need_token(request: web.Request) -> web.Response:
    return render(request, "setup/token.html", status=403)


async def start(request: web.Request) -> web.StreamResponse:
    """/setup?token=...: trade the token for a session cookie (the token leaves the address bar)."""
    wizard = request.app[WIZARD]
    if wizard.completed:
        raise _gone()
    if _session(request) is not None and "token" not in request.query:
        raise web.HTTPSeeOther("/setup/language")
    if not wizard.token.check(request.query.get("token")):
        return _need_token(request)
    sid = secrets.token_urlsafe(32)
    wizard.sessions[sid] = secrets.token_urlsafe(32)
    response = web.HTTPSeeOther("/setup/language")
    response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", secure=request.secure, path="/setup")
    raise response


def _step_page(request: web.Request, step: str, csrf: str, status: int = 200, **context: Any) -> web.Response:
    wizard = request.app[WIZARD]
    return render(request, f"setup/{step}.html", status=status, step=step, steps=STEPS, titles=STEP_TITLES,
                  csrf=csrf, a=wizard.answers, check=wizard.name_check, advice=ADVICE,
                  directory_check=wizard.directory_check, database_check=wizard.database_check, **context)


async def step(request: web.Request) -> web.StreamResponse:
    wizard = request.app[WIZARD]
    name = request.match_info["step"]
    if wizard.completed or name not in STEPS:
        raise _gone()
    sid = _session(request)
    if sid is None:
        return _need_token(request)
    csrf = wizard.sessions[sid]
    if request.method == "GET":
        return _step_page(request, name, csrf)
    form = await request.post()
    if not secrets.compare_digest(str(form.get("csrf", "")), csrf):
        return render(request, "setup/token.html", status=403, csrf_failed=True)
    try:
        follow = await STEP_HANDLERS[name](wizard, form)
    except SetupError as exc:
        return _step_page(request, name, csrf, status=400, error=str(exc), form=form)
    if isinstance(follow, web.Response):
        return follow
    if follow == "stay":
        return _step_page(request, name, csrf, form=form)
    if name == "review":
        return await _finish(request, wizard)
    target = f"/setup/{STEPS[STEPS.index(name) + 1]}"
    if name == "language":
        target += f"?lang={wizard.answers.language}"
    raise web.HTTPSeeOther(target)


async def _finish(request: web.Request, wizard: Wizard) -> web.Response:
    if not wizard.answers.password:
        raise web.HTTPSeeOther("/setup/admin")
    try:
        shown = await wizard.finish(wizard.answers)
    except SetupError as exc:
        return _step_page(request, "review", "", status=400, error=str(exc))
    wizard.completed = True
    wizard.sessions.clear()
    wizard.answers.password = ""
    port = shown.pop("https_port", 0)  # the console will be on HTTPS (plain HTTP redirects there)
    console = https_url(request, port, "/admin/") if port else "/admin/"
    chat = https_url(request, port, "/chat") if port else "/chat"
    response = render(request, "setup/done.html", console_url=console, chat_url=chat, **shown)
    response.del_cookie(COOKIE, path="/setup")
    return response


# -- steps ------------------------------------------------------------------------------------------

async def _language(wizard: Wizard, form: Any) -> str:
    lang = str(form.get("language", ""))
    if lang not in i18n.LANGUAGES:
        raise SetupError(_("Choose one of the languages."))
    wizard.answers.language = lang
    i18n.set_language(lang)
    return "next"


async def _name(wizard: Wizard, form: Any) -> str:
    name = str(form.get("domain", "")).strip().lower().rstrip(".")
    try:
        domain = check_domain(name)
    except ValueError:
        raise SetupError(_("%(name)s is not a valid server name. Use a name like chat.example.org.",
                           name=name or '""')) from None
    wizard.answers.domain = domain
    wizard.name_check = await check_name(domain)
    if form.get("action") == "check":
        return "stay"
    wizard.answers.certificate = wizard.name_check.suggested_certificate  # type: ignore[assignment]
    return "next"


async def _certificate(wizard: Wizard, form: Any) -> str:
    choice = str(form.get("certificate", ""))
    answers = wizard.answers
    if choice == "acme":
        email = str(form.get("acme_email", "")).strip()
        if "@" not in email or form.get("agree_tos") != "on":
            raise SetupError(_("Let's Encrypt needs an e-mail address and your agreement to its terms."))
        answers.acme_email = email
    elif choice == "upload":
        chain, key = form.get("chain"), form.get("key")
        if not isinstance(chain, web.FileField) or not isinstance(key, web.FileField):
            raise SetupError(_("Choose both files: the certificate chain and its private key (PEM)."))
        answers.certificate_file, answers.key_file = _store_upload(wizard.state_dir, chain, key)
    elif choice != "local":
        raise SetupError(_("Choose how the server gets its certificate."))
    answers.certificate = choice  # type: ignore[assignment]
    return "next"


def _store_upload(state_dir: Path, chain: web.FileField, key: web.FileField) -> tuple[Path, Path]:
    """Keep the uploaded PEM files after checking that they belong together (at most 1 MiB each)."""
    return store_uploaded_certificate(state_dir, chain.file.read(1 << 20), key.file.read(1 << 20))


async def _admin(wizard: Wizard, form: Any) -> str:
    name = str(form.get("admin", "")).strip().lower()
    password = str(form.get("password", ""))
    wizard.answers.admin = name
    wizard.answers.admin_jid()  # raises SetupError for a name that is not a JID local part
    if len(password) < MIN_PASSWORD:
        raise SetupError(_("The password needs at least %(n)s characters.", n=MIN_PASSWORD))
    if password != str(form.get("password2", "")):
        raise SetupError(_("The two passwords differ."))
    wizard.answers.password = password
    return "next"


async def _registration(wizard: Wizard, form: Any) -> str:
    choice = str(form.get("registration", ""))
    if choice not in ("invite", "open", "admin"):
        raise SetupError(_("Choose who may create accounts."))
    wizard.answers.registration = choice  # type: ignore[assignment]
    return "next"


DIRECTORY_CA = "directory-ca.pem"  # in <state_dir>/certs: the CA the directory step was given


async def _directory(wizard: Wizard, form: Any) -> str:
    """The optional company directory: its settings, and a live test that finds one user (Openfire's
    "Test settings"); Continue keeps the settings (a failed test does not stop a setup)."""
    answers = wizard.answers
    if form.get("use_directory") != "on":
        answers.ldap = None
        wizard.directory_check = None
        return "next"
    ca_file = answers.ldap.ca_file if answers.ldap is not None else None
    upload = form.get("ca")
    if isinstance(upload, web.FileField) and upload.filename:
        ca_file = _store_directory_ca(wizard.state_dir, upload.file.read(1 << 20))
    try:
        settings = directory_settings(
            uri=str(form.get("uri", "")), starttls=form.get("starttls") == "on", ca_file=ca_file,
            bind_dn=str(form.get("bind_dn", "")), bind_password=str(form.get("bind_password", "")),
            base=str(form.get("base", "")), active_directory=form.get("kind") == "ad")
    except ServiceError as exc:
        raise SetupError(str(exc)) from None
    answers.ldap = settings
    if form.get("action") == "test":
        wizard.directory_check = await DirectoryDesk.test(settings, str(form.get("test_user", "")))
        return "stay"
    return "next"


def _store_directory_ca(state_dir: Path, pem: bytes) -> Path:
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise SetupError(_("The directory's CA certificate must be a PEM file (-----BEGIN CERTIFICATE-----)."))
    folder = state_dir / "certs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DIRECTORY_CA
    path.write_bytes(pem)
    return path


def _number(form: Any, name: str, lo: int, hi: int) -> int:
    try:
        value = int(str(form.get(name, "")).strip())
    except ValueError:
        value = -1
    if not lo <= value <= hi:
        raise SetupError(_("Enter a whole number from %(lo)s to %(hi)s.", lo=lo, hi=hi))
    return value


async def _features(wizard: Wizard, form: Any) -> str:
    a = wizard.answers
    a.group_chat = form.get("group_chat") == "on"
    a.file_sharing = form.get("file_sharing") == "on"
    a.upload_quota_mb = _number(form, "upload_quota_mb", 1, 1_000_000) if a.file_sharing else a.upload_quota_mb
    history = form.get("history") == "on"
    a.history_days = _number(form, "history_days", 1, 36500) if history else 0
    a.federation = form.get("federation") == "on"
    a.calls = form.get("calls") == "on"
    return "next"


async def _database(wizard: Wizard, form: Any) -> str:
    """The embedded SQLite file, or a PostgreSQL server whose address is tested live before it is taken."""
    wizard.database_check = ""
    if form.get("database", "embedded") == "embedded":
        wizard.answers.database_url = ""
        return "next"
    url = str(form.get("database_url", "")).strip()
    wizard.database_check = await check_database(url)
    wizard.answers.database_url = url
    return "stay" if form.get("action") == "check" else "next"


async def _review(wizard: Wizard, form: Any) -> str:
    return "next"


STEP_HANDLERS: dict[str, Callable[[Wizard, Any], Awaitable[Any]]] = {
    "language": _language, "name": _name, "certificate": _certificate, "admin": _admin,
    "registration": _registration, "directory": _directory, "features": _features, "database": _database,
    "review": _review,
}


ADVICE = {
    "invalid": i18n.lazy("This is not a valid server name. Use a name like chat.example.org."),
    "unresolved": i18n.lazy("This name does not resolve (yet). For use inside your network, add it to your "
                            "router's or DNS server's local names; for the Internet, create an A/AAAA record "
                            "pointing to this machine's public address. You can continue now: clients can use "
                            "the address of this machine meanwhile."),
    "public": i18n.lazy("This name resolves to a public address, so Let's Encrypt can issue a certificate if "
                        "ports 80, 5222 and 5269 reach this machine from the Internet (forward them on your "
                        "router)."),
    "lan": i18n.lazy("This name points to this machine inside your network only. That is fine for an office: "
                     "use the local certificate and trust it once on each device."),
    "elsewhere": i18n.lazy("This name resolves to another machine in your network, not to this one. Fix the "
                           "DNS record, or clients will not reach this server."),
    "local-only": i18n.lazy("This name only points to this machine itself (loopback): other devices will not "
                            "reach it. Use a name your network's DNS knows."),
}


async def check_name_json(request: web.Request) -> web.Response:
    """The live check behind the name field (progressive enhancement: the form works without it)."""
    wizard = request.app[WIZARD]
    if wizard.completed:
        raise _gone()
    if _session(request) is None:
        return web.json_response({"error": "no setup session"}, status=403)
    result = await check_name(request.query.get("name", ""))
    return web.json_response({"verdict": result.verdict, "addresses": list(result.addresses),
                              "advice": html.escape(_(ADVICE[result.verdict]))})


async def root(request: web.Request) -> web.Response:
    if request.app[WIZARD].completed:
        raise _gone()
    return _need_token(request)


def setup(app: web.Application, wizard: Wizard) -> None:
    app[WIZARD] = wizard
    app.router.add_get("/", root)
    app.router.add_get("/setup", start)
    app.router.add_get("/setup/", start)
    app.router.add_get("/setup/check-name", check_name_json)
    app.router.add_route("GET", "/setup/{step}", step)
    app.router.add_route("POST", "/setup/{step}", step)


__all__ = ["ADVICE", "STEPS", "WIZARD", "Wizard", "setup"]
