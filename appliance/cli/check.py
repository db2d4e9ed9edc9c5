"""`parlour check config`: validate the configuration and the environment it points at.

Prints one line per check, `ok`, `warn` or `FAIL`, each problem followed by a fix hint.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
from pathlib import Path

from appliance.certs.care import certificate_files
from appliance.certs.ocsp import saved_status
from appliance.cli import _config
from appliance.config import Config, ConfigError
from appliance.util import fdlimit

OK, WARN, FAIL = "ok", "warn", "FAIL"


class Report:
    """Collects check lines and the worst status seen."""

    def __init__(self) -> None:
        self.failed = False

    def line(self, status: str, name: str, message: str, fix: str | None = None) -> None:
        print(f"{status:<4} {name} {message}")
        if fix:
            print(f"     fix: {fix}")
        self.failed = self.failed or status == FAIL


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("check", help="check the configuration and environment")
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    config = targets.add_parser("config", help="validate the config file and the paths it names")
    _config.add_config_arguments(config)
    config.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = Report()
    path = _config.config_path(args)
    if path.exists() and _config.not_set_up(path):
        report.line(FAIL, "config", f"{path}: not set up yet: {_config.NOT_SET_UP_HINT}")
        return 1
    try:
        config = _config.load(args)
    except ConfigError as exc:
        count = len(exc.problems)
        report.line(FAIL, "config", f"{path}: {count} problem{'s' if count != 1 else ''}")
        for problem in exc.problems:
            print(f"     {problem}")
        print("     fix: edit the file as the lines above say, then run `parlour check config` again")
        return 2
    names = ", ".join(host.name for host in config.hosts)
    count = len(config.hosts)
    where = str(config.source) if config.source else f"built-in development defaults (no {path})"
    report.line(OK, "config", f"{where}: {count} host{'s' if count != 1 else ''} ({names})")
    check_state_dir(report, config.server.state_dir)
    check_tls(report, config)
    check_admins(report, config)
    check_encryption(report, config)
    check_open_files(report, config.limits.max_connections, fdlimit.soft_limit())
    check_acme(report, config)
    check_ocsp(report, config)
    check_database(report, config)
    check_directory(report, config)
    return 1 if report.failed else 0


def check_directory(report: Report, config: Config) -> None:
    """With [ldap] on: connect, bind as the service account and count the users, as the server will."""
    if not config.ldap.enabled:
        return
    from appliance.services.directory import DirectoryDesk

    result = asyncio.run(DirectoryDesk.test(config.ldap))
    if result.ok:
        report.line(OK, "ldap", "; ".join(result.steps))
    else:
        report.line(FAIL, "ldap", result.error, "fix [ldap] as the message says (docs/directory.md lists each failure)")


def check_database(report: Report, config: Config) -> None:
    """The database `[storage]` names answers, and its schema is one this build can run (or migrate)."""
    from appliance.app.storage import database_status

    try:
        name, status = database_status(config)
    except Exception as exc:  # psycopg's or apsw's error, whichever engine: the message says what failed
        report.line(FAIL, "database", f"cannot connect: {str(exc).strip()}",
                    "check [storage] url, that the server runs and accepts this user (pg_hba.conf, ~/.pgpass)")
        return
    if status.version > status.latest:
        report.line(FAIL, "database", f"{name} is at schema version {status.version}, newer than this "
                    f"Parlour's {status.latest}", "run the Parlour that wrote it, or restore a backup")
    elif status.version == 0:
        report.line(OK, "database", f"{name} holds no schema yet: the server creates it when it starts")
    elif status.version < status.latest:
        report.line(WARN, "database", f"{name} is at schema version {status.version} of {status.latest}: "
                    "the server migrates it when it starts (back it up first)")
    else:
        report.line(OK, "database", f"{name} answers, schema version {status.version} (current)")


def check_state_dir(report: Report, state_dir: Path) -> None:
    if state_dir.is_dir():
        if os.access(state_dir, os.W_OK | os.X_OK):
            report.line(OK, "state", f"{state_dir}: writable")
        else:
            report.line(FAIL, "state", f"{state_dir}: not writable by this user",
                        f"give the service user ownership, e.g. `chown -R parlour: {state_dir}`")
        return
    if state_dir.exists():
        report.line(FAIL, "state", f"{state_dir}: exists but is not a folder",
                    "move it away or set server.state_dir to another folder")
        return
    parent = next((p for p in state_dir.parents if p.exists()), None)
    if parent is not None and os.access(parent, os.W_OK | os.X_OK):
        report.line(OK, "state", f"{state_dir}: will be created at start")
    else:
        report.line(FAIL, "state", f"{state_dir}: missing and cannot be created by this user",
                    f"create it: `mkdir -p {state_dir}` as an administrator, owned by the service user")


def check_tls(report: Report, config: Config) -> None:
    tls = config.tls
    if tls.certificate is None or tls.private_key is None:
        report.line(OK, "tls", "no certificate configured: a self-signed one is made in the state folder")
        return
    problems = False
    for key, path, marker in (("tls.certificate", tls.certificate, "CERTIFICATE"),
                              ("tls.private_key", tls.private_key, "PRIVATE KEY")):
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            report.line(FAIL, "tls", f"{key} = {path}: {exc.strerror or exc}",
                        "point it at a readable PEM file, or remove both tls keys for a self-signed one")
            problems = True
            continue
        if f"-----BEGIN {marker}-----" not in text and (
            marker != "PRIVATE KEY" or "PRIVATE KEY-----" not in text
        ):
            report.line(FAIL, "tls", f"{key} = {path}: no PEM {marker.lower()} in the file",
                        "use the PEM file (text starting with -----BEGIN ...)")
            problems = True
    if not problems:
        report.line(OK, "tls", f"{tls.certificate}: readable")


def check_ocsp(report: Report, config: Config) -> None:
    """The OCSP answers the running server keeps for its certificates: a revoked certificate fails."""
    if not config.tls.ocsp_stapling:
        return
    for chain, _key in certificate_files(config):
        saved = saved_status(config.server.state_dir, chain)
        if saved is None:
            continue
        status, until = saved
        if status == "revoked":
            report.line(FAIL, "ocsp", f"{chain}: REVOKED by its certificate authority; clients that check refuse it",
                        "replace it: `parlour cert renew --force` with ACME, or import a new certificate")
        elif status == "good":
            report.line(OK, "ocsp", f"{chain}: good, stapled until {until:%Y-%m-%d %H:%M} UTC" if until else
                        f"{chain}: good")
        else:
            report.line(WARN, "ocsp", f"{chain}: the kept OCSP answer is {status}: nothing is stapled",
                        "the running server asks the responder again by itself; see the log")


def check_admins(report: Report, config: Config) -> None:
    hosts = {host.name for host in config.hosts}
    if not config.server.admins:
        report.line(WARN, "admins", "none configured: nobody can use the admin console",
                    'add server.admins = ["you@' + config.hosts[0].name + '"]')
        return
    for admin in config.server.admins:
        domain = admin.rpartition("@")[2]
        if domain not in hosts:
            report.line(WARN, "admins", f"{admin}: {domain} is not a host of this server",
                        "admins log in with an account on one of the hosts")
    if all(admin.rpartition("@")[2] in hosts for admin in config.server.admins):
        report.line(OK, "admins", ", ".join(config.server.admins))


def check_encryption(report: Report, config: Config) -> None:
    c2s = config.c2s
    if c2s.require_encryption:
        return
    public = [i for i in c2s.interfaces if not ipaddress.ip_address(i).is_loopback]
    if public:
        report.line(WARN, "c2s", f"encryption is optional on {', '.join(public)}: passwords may "
                    "cross the network in clear", "set c2s.require_encryption = true")


def check_open_files(report: Report, max_connections: int, limit: int | None) -> None:
    """Each connection holds a descriptor: a soft RLIMIT_NOFILE below the connection limit (plus room
    for the database, listeners and logs) stops the server accepting long before max_connections."""
    if limit is None:
        return
    wanted = fdlimit.needed(max_connections)
    if limit < wanted:
        report.line(WARN, "files", f"open-file limit {limit} (soft RLIMIT_NOFILE of this process) is below "
                    f"limits.max_connections = {max_connections} + {fdlimit.HEADROOM}: connections fail "
                    f"from about {max(limit - fdlimit.HEADROOM, 0)}", f"{fdlimit.FIX} (at least {wanted})")
    else:
        report.line(OK, "files", f"open-file limit {limit} covers limits.max_connections = {max_connections}")


def check_acme(report: Report, config: Config) -> None:
    """ACME on without the terms accepted (or without a contact address) cannot get a certificate."""
    acme = config.acme
    if not acme.enabled:
        return
    if not acme.agree_tos:
        report.line(WARN, "acme", "agree_tos = false: the certificate authority will not issue any certificate",
                    f"read the terms of service of {acme.directory} and set acme.agree_tos = true")
    if not acme.email:
        report.line(WARN, "acme", "no email: the certificate authority cannot warn you about expiry or problems",
                    'set acme.email = "you@example.org"')
    if acme.agree_tos and acme.email:
        report.line(OK, "acme", f"{acme.directory}, contact {acme.email}")
