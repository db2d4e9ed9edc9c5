"""What ACME keeps in ``<state_dir>/acme/``: account key and registration, last order, certificate, status.

Files: ``account.key`` (0600, PEM), ``account.json`` (registration and the directory it belongs to),
``order.json`` (URL and names of the last order), ``certificate.pem`` (full chain) and
``certificate.key`` (0600), ``status.json`` (the last attempt and its problems, for the CLI and console).
Every write is atomic (temporary file + rename), key before certificate.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.certs.acme.problems import CertProblem
from appliance.certs.selfsigned import write_atomic

__all__ = ["AcmeState", "AcmeStatus"]

_KEY_MODE, _FILE_MODE = 0o600, 0o644


@dataclass(frozen=True, slots=True)
class AcmeStatus:
    """The outcome of the last attempt."""

    ok: bool
    when: dt.datetime
    names: tuple[str, ...] = ()
    problems: tuple[CertProblem, ...] = ()
    next_attempt: dt.datetime | None = None
    failures: int = 0  # consecutive failed attempts, for the backoff
    by: str = ""  # who made the attempt: "timer", "console", "parlour cert renew", ...
    request: str = ""  # the id of the renewal request it answers (``parlour cert renew`` via the server)
    extra: dict[str, Any] = field(default_factory=dict)


class AcmeState:
    """Paths and (de)serialisation of the ACME state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "acme"
        self.account_key = self.dir / "account.key"
        self.account = self.dir / "account.json"
        self.order = self.dir / "order.json"
        self.chain = self.dir / "certificate.pem"
        self.key = self.dir / "certificate.key"
        self.status_file = self.dir / "status.json"
        # The certificate before the newest, kept while it still covers names the newest lacks.
        self.previous_chain = self.dir / "previous.pem"
        self.previous_key = self.dir / "previous.key"

    def ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def has_certificate(self) -> bool:
        return self.chain.exists() and self.key.exists()

    def served_files(self) -> list[tuple[Path, Path]]:
        """(chain, key) of the current certificate and of the kept previous one, those that exist."""
        pairs = [(self.chain, self.key), (self.previous_chain, self.previous_key)]
        return [(chain, key) for chain, key in pairs if chain.exists() and key.exists()]

    def write_certificate(self, chain_pem: bytes, key_pem: bytes) -> None:
        self.ensure_dir()
        write_atomic(self.key, key_pem, _KEY_MODE)
        write_atomic(self.chain, chain_pem, _FILE_MODE)

    def keep_previous(self) -> None:
        """Copy the current certificate aside (``previous.pem``), before a new one replaces it."""
        write_atomic(self.previous_key, self.key.read_bytes(), _KEY_MODE)
        write_atomic(self.previous_chain, self.chain.read_bytes(), _FILE_MODE)

    def drop_previous(self) -> None:
        self.previous_chain.unlink(missing_ok=True)
        self.previous_key.unlink(missing_ok=True)

    def write_json(self, path: Path, data: dict[str, Any], *, private: bool = False) -> None:
        self.ensure_dir()
        write_atomic(path, json.dumps(data, indent=2).encode(), _KEY_MODE if private else _FILE_MODE)

    def read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save_status(self, status: AcmeStatus) -> None:
        self.write_json(self.status_file, {
            "ok": status.ok,
            "when": status.when.isoformat(),
            "names": list(status.names),
            "problems": [p.to_json() for p in status.problems],
            "next_attempt": status.next_attempt.isoformat() if status.next_attempt else None,
            "failures": status.failures,
            "by": status.by,
            "request": status.request,
        })

    def load_status(self) -> AcmeStatus | None:
        data = self.read_json(self.status_file)
        if data is None:
            return None
        try:
            return AcmeStatus(
                ok=bool(data["ok"]),
                when=dt.datetime.fromisoformat(data["when"]),
                names=tuple(data.get("names", ())),
                problems=tuple(CertProblem.from_json(p) for p in data.get("problems", ())),
                next_attempt=dt.datetime.fromisoformat(data["next_attempt"]) if data.get("next_attempt") else None,
                failures=int(data.get("failures", 0)),
                by=str(data.get("by", "")),
                request=str(data.get("request", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None
