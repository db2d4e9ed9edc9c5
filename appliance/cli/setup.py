"""`parlour setup`: the first-run setup without a browser (images, automation): writes parlour.toml
and creates the administrator, exactly as the web wizard does."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from appliance.app.offline import offline_setup
from appliance.cli import _config
from appliance.platform import paths
from appliance.services.setup import CERTIFICATES, REGISTRATIONS, SetupAnswers, SetupError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("setup", help="first-run setup without the web wizard")
    _config.add_config_arguments(parser, dev=False)
    parser.add_argument("--domain", required=True, help="the server name, e.g. chat.example.org")
    parser.add_argument("--admin", required=True, help="the first administrator: a user name or admin@domain")
    parser.add_argument("--password-file", type=Path, metavar="PATH",
                        help="read the administrator's password from this file (default: prompt or stdin)")
    parser.add_argument("--registration", choices=REGISTRATIONS, default="invite",
                        help="who may create accounts (default: invite)")
    parser.add_argument("--certificate", choices=CERTIFICATES, default="local",
                        help="local CA (default), acme (Let's Encrypt, needs --acme-email) or upload "
                             "(needs --cert and --key)")
    parser.add_argument("--acme-email", default="", help="e-mail for Let's Encrypt (agrees to its terms)")
    parser.add_argument("--cert", type=Path, help="PEM certificate chain for --certificate upload")
    parser.add_argument("--key", type=Path, help="PEM private key for --certificate upload")
    parser.add_argument("--state-dir", type=Path, help=f"state folder (default: {paths.default_state_dir()})")
    parser.add_argument("--force", action="store_true", help="overwrite an existing configuration file")
    parser.set_defaults(func=run)


def _password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        lines = args.password_file.read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("Administrator password: ")
        if first != getpass.getpass("Again: "):
            raise SetupError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def run(args: argparse.Namespace) -> int:
    config_path = _config.config_path(args)
    if not _config.not_set_up(config_path) and not args.force:
        print(f"{config_path} exists already; setup is done (use --force to write it again)", file=sys.stderr)
        return 1
    state_dir = (args.state_dir or _config.setup_state_dir(config_path)).absolute()
    try:
        answers = SetupAnswers(
            domain=args.domain, admin=args.admin, password=_password(args), registration=args.registration,
            certificate=args.certificate, acme_email=args.acme_email,
            certificate_file=args.cert.absolute() if args.cert else None,
            key_file=args.key.absolute() if args.key else None,
        )
        if args.certificate == "acme" and "@" not in args.acme_email:
            raise SetupError("--certificate acme needs --acme-email")
        config = asyncio.run(offline_setup(answers, config_path, state_dir))
    except (SetupError, OSError) as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 1
    (state_dir / "setup-token").unlink(missing_ok=True)
    print(f"Wrote {config_path}; administrator {answers.admin_jid()} on {config.hosts[0].name}.")
    print(f"Start the server: parlour run --config {config_path}")
    return 0
