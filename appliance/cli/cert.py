"""`parlour cert status|renew|import|ca`: see, renew, import certificates, and hand out the local CA.

Every problem is printed as a plain message with its fix (``CertProblem``), never a stack trace.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.cli import _config
from appliance.config import Config

if TYPE_CHECKING:
    from appliance.certs.acme.state import AcmeStatus
    from appliance.certs.store import CertificateInfo


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _config.add_config_arguments(common)
    parser = subparsers.add_parser("cert", help="certificate status, renewal, import and the local CA")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("status", parents=[common], help="show every certificate and the ACME state")
    renew = actions.add_parser("renew", parents=[common], help="get a certificate over ACME now")
    renew.add_argument("--force", action="store_true", help="order even when the current one is fine")
    imp = actions.add_parser("import", parents=[common], help="use your own certificate (PEM chain and key)")
    imp.add_argument("chain", type=Path, metavar="CHAIN", help="PEM certificate chain, leaf first")
    imp.add_argument("key", type=Path, metavar="KEY", help="its unencrypted PEM private key")
    ca = actions.add_parser("ca", parents=[common], help="print or export the local CA certificate")
    ca.add_argument("--out", type=Path, metavar="FILE", help="write the CA certificate (PEM) to FILE")
    for action in actions.choices.values():
        action.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = _config.load(args)
    return int({"status": _status, "renew": _renew, "import": _import, "ca": _ca}[args.action](args, config))


def _store(config: Config):  # type: ignore[no-untyped-def]
    """A CertificateStore with every certificate file this installation has (nothing is issued)."""
    from appliance.certs.care import certificate_files
    from appliance.certs.store import CertificateError, CertificateStore

    store = CertificateStore(config.server.state_dir)
    for chain, key in certificate_files(config):
        try:
            store.add(chain, key)
        except CertificateError as exc:
            print(f"  unusable: {exc}")
    return store


def _status(_args: argparse.Namespace, config: Config) -> int:
    from appliance.certs.acme.renewal import renewal_due, warn_before
    from appliance.certs.acme.state import AcmeState
    from appliance.certs.names import hosted_names

    now = dt.datetime.now(dt.UTC)
    store = _store(config)
    infos = store.info()
    if not infos:
        print("No certificate yet: the server makes a local one at its first start.")
    local_ca = _local_ca_subject(config)
    problems = 0
    for info in infos:
        days = (info.not_after - now).days
        kind = "local CA (not trusted by clients out of the box)" if info.issuer == local_ca else info.issuer
        expired = info.not_after <= now
        problems += expired
        flag = "EXPIRED" if expired else "expires soon" if info.not_after - now < warn_before(info) else "ok"
        print(f"{info.chain}\n  names:  {', '.join(info.names)}\n  issuer: {kind}\n"
              f"  valid until {info.not_after:%Y-%m-%d %H:%M} UTC ({days} days left, {flag}"
              + (", renewal due" if renewal_due(info, now) and not info.self_signed else "") + ")")
    covered = {n for info in infos if (info.issuer != local_ca or not config.acme.enabled) and info.not_after > now
               for n in info.names}
    missing = [n for n in hosted_names(config) if n not in covered]
    if missing:
        print(f"Not covered by any certificate: {', '.join(missing)}")
        problems += 1
    if not config.acme.enabled:
        print("ACME: off (set [acme] enabled = true for automatic certificates)")
        return 1 if problems else 0
    status = AcmeState(config.server.state_dir).load_status()
    if status is None:
        print(f"ACME: on ({config.acme.directory}), no attempt yet")
        return 1 if problems else 0
    by = f" by {status.by}" if status.by else ""
    print(f"ACME: last attempt {status.when:%Y-%m-%d %H:%M} UTC{by}: {'ok' if status.ok else 'failed'}")
    for problem in status.problems:
        print(f"  {problem.severity}: {problem.message}\n    fix: {problem.hint}")
    if status.next_attempt:
        print(f"  next attempt: {status.next_attempt:%Y-%m-%d %H:%M} UTC")
    return 0 if status.ok and not problems else 1


def _local_ca_subject(config: Config) -> str | None:
    from appliance.certs.care import local_ca_subject

    return local_ca_subject(config.server.state_dir / "certs" / "ca.pem")


def _renew(args: argparse.Namespace, config: Config) -> int:
    """Renew here, or (port busy, TLS-ALPN-01) through the running server; recorded in the status."""
    if not config.acme.enabled:
        print("ACME is off: set [acme] enabled = true (with email and agree_tos) first.", file=sys.stderr)
        return 2
    return asyncio.run(_renew_async(config, force=args.force))


async def _renew_async(config: Config, *, force: bool) -> int:
    from appliance.certs.acme.challenges import ChallengeResponder
    from appliance.certs.acme.http01 import ChallengeListener
    from appliance.certs.acme.manager import AcmeManager
    from appliance.certs.acme.renewal import RenewalScheduler, renewal_due
    from appliance.platform.owner import become_state_owner

    acme = config.acme
    store = _store(config)
    responder = ChallengeResponder(webroot=acme.webroot)
    manager = AcmeManager(config, store, responder)
    current = manager.current()
    if (not force and current is not None and not renewal_due(current, dt.datetime.now(dt.UTC))
            and set(manager.names) <= set(current.names)):
        print(f"The current certificate is fine (valid until {current.not_after:%Y-%m-%d %H:%M} UTC); use --force "
              "to order a new one anyway.")
        return 0
    if acme.challenge == "tls-alpn-01":  # answered by the server's own TLS listener
        return await _ask_server(config, "TLS-ALPN-01 is answered by the running server's TLS listener")
    listener = None
    if acme.webroot is None:
        listener = ChallengeListener(responder, interfaces=config.http.interfaces or config.c2s.interfaces,
                                     port=acme.http_port, https_port=None)
        if await listener.start() is None:
            await listener.stop()
            return await _ask_server(config, f"Port {acme.http_port} is busy")
    become_state_owner(config.server.state_dir)  # after binding port 80: files stay the service's
    try:
        await RenewalScheduler(store, manager).renew(by="parlour cert renew")
    finally:
        if listener is not None:
            await listener.stop()
    return _report(manager.state.load_status(), manager.current())


async def _ask_server(config: Config, why: str) -> int:
    """Have the running server renew (it holds the challenge port) through a request file it watches."""
    from appliance.certs.acme.request import wait_for_answer, wait_taken, withdraw_if_untaken, write_request
    from appliance.certs.acme.state import AcmeState
    from appliance.certs.watch import WATCH_INTERVAL
    from appliance.platform.owner import become_state_owner

    become_state_owner(config.server.state_dir)
    state = AcmeState(config.server.state_dir)
    request = write_request(state, force=True)
    print(f"{why}: asking the running Parlour server to renew...", flush=True)
    if not await wait_taken(state, 3 * WATCH_INTERVAL + 2):
        withdraw_if_untaken(state)
        print(f"{why} and no running Parlour server answered: free the port (another program holds it) or start "
              "Parlour, or use acme.webroot behind a web server.", file=sys.stderr)
        return 1
    status = await wait_for_answer(state, request, ANSWER_TIMEOUT)
    if status is None:
        print(f"The server is still working on it after {ANSWER_TIMEOUT:.0f} seconds; `parlour cert status` "
              "shows the outcome.", file=sys.stderr)
        return 1
    return _report(status, None)


ANSWER_TIMEOUT = 300.0


def _report(status: AcmeStatus | None, info: CertificateInfo | None) -> int:
    """Print the outcome of an attempt the way `cert status` does; the exit code."""
    if status is None:
        print("No attempt was recorded.", file=sys.stderr)
        return 1
    for problem in status.problems:
        print(f"{problem.severity}: {problem.message}\n  fix: {problem.hint}",
              file=sys.stderr if problem.severity == "error" else sys.stdout)
    if not status.ok:
        if status.next_attempt:
            print(f"The server tries again at {status.next_attempt:%Y-%m-%d %H:%M} UTC.", file=sys.stderr)
        return 1
    what = f"valid until {info.not_after:%Y-%m-%d %H:%M} UTC: {info.chain}" if info is not None else "in use"
    print(f"New certificate for {', '.join(status.names)}, {what}")
    return 0


def _import(args: argparse.Namespace, config: Config) -> int:
    """Check a certificate (readable, key matches, valid now, for a hosted name) and hand it to the
    server, which serves it within seconds (it watches the folder)."""
    from appliance.certs.care import imported_dir
    from appliance.certs.names import hosted_names
    from appliance.certs.selfsigned import write_atomic
    from appliance.certs.store import CertificateError, CertificateStore
    from appliance.certs.watch import WATCH_INTERVAL
    from appliance.platform.owner import become_state_owner

    try:
        chain_pem, key_pem = args.chain.read_bytes(), args.key.read_bytes()  # maybe only root may read them
        with tempfile.TemporaryDirectory() as scratch:  # checking writes nothing to the state folder
            info = CertificateStore(Path(scratch)).add(args.chain, args.key)
    except (OSError, CertificateError) as exc:
        print(f"Cannot import: {exc}", file=sys.stderr)
        return 1
    problem = _import_problem(info, hosted_names(config), dt.datetime.now(dt.UTC))
    if problem:
        print(f"Cannot import {args.chain}: {problem}", file=sys.stderr)
        return 1
    become_state_owner(config.server.state_dir)  # the service must be able to read what we write
    folder = imported_dir(config)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = info.names[0].replace("*", "_wildcard") if info.names else "imported"
    chain, key = folder / f"{stem}.pem", folder / f"{stem}.key"
    write_atomic(key, key_pem, 0o600)
    write_atomic(chain, chain_pem, 0o644)
    print(f"Imported the certificate for {', '.join(info.names)} (valid until {info.not_after:%Y-%m-%d}) as "
          f"{chain}; a running server uses it within {WATCH_INTERVAL * 2:.0f} seconds.")
    return 0


def _import_problem(info: CertificateInfo, hosted: list[str], now: dt.datetime) -> str | None:
    """Why a certificate is no use to this server (expired, not yet valid, for none of its names)."""
    if info.not_after <= now:
        return f"it expired on {info.not_after:%Y-%m-%d %H:%M} UTC. Get a current one from its authority."
    if info.not_before > now + dt.timedelta(minutes=5):
        return (f"it is valid only from {info.not_before:%Y-%m-%d %H:%M} UTC (or this machine's clock is wrong); "
                "import it then.")
    if not any(_covers(info.names, name) for name in hosted):
        return (f"it is for {', '.join(info.names)}, but this server hosts {', '.join(hosted)}. Import a "
                "certificate for one of those names (add the host to the configuration first if it is new).")
    return None


def _covers(names: tuple[str, ...], name: str) -> bool:
    _, _, parent = name.partition(".")
    return name in names or (bool(parent) and f"*.{parent}" in names)


def _ca(args: argparse.Namespace, config: Config) -> int:
    ca = config.server.state_dir / "certs" / "ca.pem"
    if not ca.exists():
        print(f"No local CA yet ({ca}): start the server once to create it.", file=sys.stderr)
        return 1
    from appliance.services.ca_notes import ca_fingerprint, ca_notes_text

    subject, fingerprint = ca_fingerprint(ca.read_bytes())
    if args.out is not None:
        args.out.write_bytes(ca.read_bytes())
        print(f"Wrote the local CA certificate to {args.out}")
    else:
        sys.stdout.write(ca.read_text())
    print(f"Local CA: {subject}\nSHA-256 fingerprint: {fingerprint}\n{ca_notes_text()}",
          file=sys.stderr if args.out is None else sys.stdout)
    return 0
