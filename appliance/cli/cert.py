"""`parlour cert status|renew|import|ca`: see, renew, import certificates, and hand out the local CA.

Every problem is printed as a plain message with its fix (``CertProblem``), never a stack trace.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import sys
from pathlib import Path

from appliance.cli import _config
from appliance.config import Config


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
    for info in infos:
        days = (info.not_after - now).days
        kind = "local CA (not trusted by clients out of the box)" if info.issuer == local_ca else info.issuer
        flag = "EXPIRED" if days < 0 else "expires soon" if info.not_after - now < warn_before(info) else "ok"
        print(f"{info.chain}\n  names:  {', '.join(info.names)}\n  issuer: {kind}\n"
              f"  valid until {info.not_after:%Y-%m-%d %H:%M} UTC ({days} days left, {flag}"
              + (", renewal due" if renewal_due(info, now) and not info.self_signed else "") + ")")
    covered = {n for info in infos if info.issuer != local_ca or not config.acme.enabled for n in info.names}
    missing = [n for n in hosted_names(config) if n not in covered]
    problems = 0
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
    print(f"ACME: last attempt {status.when:%Y-%m-%d %H:%M} UTC: {'ok' if status.ok else 'failed'}")
    for problem in status.problems:
        print(f"  {problem.severity}: {problem.message}\n    fix: {problem.hint}")
    if status.next_attempt:
        print(f"  next attempt: {status.next_attempt:%Y-%m-%d %H:%M} UTC")
    return 0 if status.ok and not problems else 1


def _local_ca_subject(config: Config) -> str | None:
    from appliance.certs.care import local_ca_subject

    return local_ca_subject(config.server.state_dir / "certs" / "ca.pem")


def _renew(args: argparse.Namespace, config: Config) -> int:
    if not config.acme.enabled:
        print("ACME is off: set [acme] enabled = true (with email and agree_tos) first.", file=sys.stderr)
        return 2
    return asyncio.run(_renew_async(config, force=args.force))


async def _renew_async(config: Config, *, force: bool) -> int:
    from appliance.certs.acme.challenges import ChallengeResponder
    from appliance.certs.acme.client import AcmeFailure
    from appliance.certs.acme.manager import AcmeManager
    from appliance.web.acme import ChallengeListener

    acme = config.acme
    if acme.challenge == "tls-alpn-01":
        print("TLS-ALPN-01 is answered by the running server's TLS listener: it renews by itself. "
              "Check `parlour cert status`.", file=sys.stderr)
        return 1
    store = _store(config)
    responder = ChallengeResponder(webroot=acme.webroot)
    manager = AcmeManager(config, store, responder)
    listener = None
    if acme.webroot is None:
        listener = ChallengeListener(responder, interfaces=config.http.interfaces or config.c2s.interfaces,
                                     port=acme.http_port, https_port=None)
        if await listener.start() is None:
            await listener.stop()
            print(f"Port {acme.http_port} is busy or not allowed (the running server may hold it; it renews by "
                  "itself when needed). Stop the server to renew by hand, or use acme.webroot.", file=sys.stderr)
            return 1
    try:
        info = await manager.obtain(force=force)
    except AcmeFailure as exc:
        for problem in exc.problems:
            print(f"{problem.severity}: {problem.message}\n  fix: {problem.hint}", file=sys.stderr)
        return 1
    finally:
        if listener is not None:
            await listener.stop()
    if info is None:
        print("The current certificate is fine; use --force to order a new one anyway.")
    else:
        print(f"New certificate for {', '.join(info.names)}, valid until {info.not_after:%Y-%m-%d}: {info.chain}")
    return 0


def _import(args: argparse.Namespace, config: Config) -> int:
    from appliance.certs.care import imported_dir
    from appliance.certs.store import CertificateError, CertificateStore

    folder = imported_dir(config)
    try:
        info = CertificateStore(config.server.state_dir).add(args.chain, args.key)
    except CertificateError as exc:
        print(f"Cannot import: {exc}", file=sys.stderr)
        return 1
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = info.names[0].replace("*", "_wildcard") if info.names else "imported"
    chain, key = folder / f"{stem}.pem", folder / f"{stem}.key"
    shutil.copyfile(args.key, key)
    key.chmod(0o600)
    shutil.copyfile(args.chain, chain)
    print(f"Imported the certificate for {', '.join(info.names)} (valid until {info.not_after:%Y-%m-%d}) as "
          f"{chain}; the server uses it after its next start.")
    return 0


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
