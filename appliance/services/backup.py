"""Backups of a whole installation in one file, and restoring one onto a fresh install.

A backup is a gzip'd tar, readable by the server's user only (0600), holding:
  manifest.json   what it is: format, Parlour and schema version, date, hosts, row counts
  parlour.toml    the configuration
  state/          the state folder: `parlour.db` copied with SQLite's backup API while the server runs
                  (one consistent committed state), uploads, certificates and keys, secrets; every
                  member 0600 (folders 0700), owned by nobody in particular

An install on PostgreSQL ([storage] url) is backed up the same way: its tables are copied, from one
REPEATABLE READ snapshot, into the `parlour.db` of the backup (a logical dump through Parlour's own schema
rather than pg_dump: no client tools of the server's exact version needed, also in the frozen builds, and
the file restores onto either engine). Restoring a backup whose configuration names a PostgreSQL database
copies that file's tables into it, which must be empty (a new database, or the old one dropped and created).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from appliance import __version__
from appliance.catalog import parse_config, schema_version
from appliance.config import Config, ConfigError
from appliance.platform.paths import DATABASE_NAME
from appliance.services.errors import ServiceError, audit
from appliance.storage.backup import (
    BadDatabase,
    copy_live_database,
    copy_postgres_database,
    load_into_postgres,
    summarize,
)
from appliance.util.files import write_atomically

FORMAT = "parlour-backup"
FORMAT_VERSION = 1
MANIFEST, CONFIG, STATE = "manifest.json", "parlour.toml", "state"
# Never copied from the state folder: the live database (copied with the backup API instead), its
# journals, copies taken before migrations, the log, and the backups themselves.
SKIPPED_NAMES = {DATABASE_NAME, f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm", f"{DATABASE_NAME}-journal",
                 "parlour.log", "backups"}
SKIPPED_PREFIXES = (f"{DATABASE_NAME}.pre-migration-", ".")


class BackupError(ServiceError):
    """A backup cannot be made, read or restored; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a backup file says about itself."""

    format: str
    format_version: int
    parlour_version: str
    schema_version: int
    created: str  # ISO 8601, UTC
    hosts: list[str]
    counts: dict[str, int]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: bytes, source: str) -> Manifest:
        try:
            data = json.loads(text)
            manifest = cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"{source}: the manifest is unreadable ({exc!r})") from None
        if manifest.format != FORMAT:
            raise BackupError(f"{source} is not a Parlour backup (format {manifest.format!r})")
        if manifest.format_version != FORMAT_VERSION:
            raise BackupError(f"{source} is a backup of format {manifest.format_version}; this Parlour "
                              f"({__version__}) reads format {FORMAT_VERSION}")
        return manifest


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size: int
    manifest: Manifest


@dataclass(frozen=True, slots=True)
class RestoreResult:
    manifest: Manifest
    config_path: Path
    state_dir: Path
    set_aside: list[Path]  # what was there before, renamed rather than deleted


def default_name(now: datetime) -> str:
    return f"parlour-backup-{now.astimezone(UTC):%Y%m%d-%H%M%S}.tar.gz"


def make_backup(config: Config, output: Path, *, now: datetime | None = None) -> BackupResult:
    """Write a backup of the installation `config` describes to `output` (blocking: run it in a thread).

    The server may be running and writing meanwhile; the file appears complete or not at all."""
    now = now or datetime.now(UTC)
    state_dir = config.server.state_dir
    database = state_dir / DATABASE_NAME
    url = config.storage.url
    if not url and not database.is_file():
        raise BackupError(f"no database at {database}: nothing to back up (is [server] state_dir right?)")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=output.parent) as scratch:
        copy = Path(scratch) / DATABASE_NAME
        try:
            # PostgreSQL's data goes in as an SQLite copy too: one format, restorable onto either engine.
            summary = copy_postgres_database(url, copy) if url else copy_live_database(database, copy)
        except BadDatabase as exc:
            raise BackupError(str(exc)) from None
        manifest = Manifest(FORMAT, FORMAT_VERSION, __version__, summary.schema_version,
                            now.astimezone(UTC).isoformat(timespec="seconds"),
                            [host.name for host in config.hosts], summary.counts)
        partial = Path(scratch) / "backup.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add_bytes(tar, MANIFEST, manifest.to_json().encode(), now)
            if config.source is not None and config.source.is_file():
                _add_bytes(tar, CONFIG, config.source.read_bytes(), now)
            tar.add(copy, f"{STATE}/{DATABASE_NAME}", filter=_private)
            for path in _state_files(state_dir, output, config.backup.folder or state_dir / "backups"):
                tar.add(path, f"{STATE}/{path.relative_to(state_dir).as_posix()}", recursive=False, filter=_private)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, output)
    audit.info("backup written to %s (%s)", output, ", ".join(f"{v} {k}" for k, v in summary.counts.items()))
    return BackupResult(output, output.stat().st_size, manifest)


def _state_files(state_dir: Path, output: Path, backups: Path) -> Iterator[Path]:
    """Regular files of the state folder in a stable order, without the skipped ones and the backups."""
    for root, dirs, files in os.walk(state_dir):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs
                         if not _skipped(d) and not os.path.islink(here / d) and here / d != backups)
        for name in sorted(files):
            path = here / name
            if not _skipped(name) and path.is_file() and not path.is_symlink() and path != output:
                yield path


def _skipped(name: str) -> bool:
    return name in SKIPPED_NAMES or name.startswith(SKIPPED_PREFIXES)


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Keys, secrets and messages are the server user's alone, in the file as on disk."""
    info.mode = 0o700 if info.isdir() else 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, now: datetime) -> None:
    info = _private(tarfile.TarInfo(name))
    info.size, info.mtime = len(data), int(now.timestamp())
    tar.addfile(info, io.BytesIO(data))


def read_manifest(path: Path) -> Manifest:
    """The manifest of the backup at `path`; `BackupError` when it is not a readable Parlour backup."""
    with _open(path) as tar:
        return _manifest(tar, path)


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:gz")
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{path} is not a Parlour backup (a .tar.gz file): {exc}") from None


def _manifest(tar: tarfile.TarFile, path: Path) -> Manifest:
    try:
        member = tar.extractfile(MANIFEST)
    except KeyError:
        member = None
    if member is None:
        raise BackupError(f"{path} has no {MANIFEST}: not a Parlour backup")
    manifest = Manifest.from_json(member.read(), str(path))
    if manifest.schema_version > schema_version():
        raise BackupError(f"{path} was made by Parlour {manifest.parlour_version} with database schema "
                          f"{manifest.schema_version}; this Parlour ({__version__}) knows schema "
                          f"{schema_version()} at most: install a newer Parlour, then restore")
    return manifest


def restore_backup(path: Path, config_path: Path, default_state_dir: Path, *, force: bool = False,
                   now: datetime | None = None) -> RestoreResult:
    """Restore the backup at `path`: its configuration to `config_path`, its state into the folder that
    configuration names. Refuses an installation that holds accounts or uploads unless `force`; whatever
    was there is renamed `<name>.before-restore-<date>`, never deleted. The server must be stopped."""
    stamp = f"before-restore-{(now or datetime.now(UTC)).astimezone(UTC):%Y%m%d-%H%M%S}"
    with _open(path) as tar:
        manifest = _manifest(tar, path)
        names = tar.getnames()
        if f"{STATE}/{DATABASE_NAME}" not in names:
            raise BackupError(f"{path} holds no database ({STATE}/{DATABASE_NAME}): the file is incomplete")
        config_text = _config_text(tar, path, config_path)
        state_dir, url = _target(config_text, config_path, default_state_dir)
        if not force and _in_use(state_dir):
            raise BackupError(f"{state_dir} already holds accounts or uploads; restoring would replace them. "
                              "Restore onto a fresh install, or pass --force (the current state is kept "
                              f"as {state_dir.name}.{stamp})")
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        incoming = Path(tempfile.mkdtemp(prefix=f".{state_dir.name}.restoring-", dir=state_dir.parent))
        try:
            members = [m for m in tar.getmembers() if m.name == STATE or m.name.startswith(f"{STATE}/")]
            tar.extractall(incoming, members=members, filter="data")  # no links out, no absolute paths
            restored = incoming / STATE
            try:
                summarize(restored / DATABASE_NAME)
                if url:  # the configuration names a PostgreSQL database: the data goes there, not to a file
                    load_into_postgres(restored / DATABASE_NAME, url)
                    (restored / DATABASE_NAME).unlink()
            except BadDatabase as exc:
                raise BackupError(f"{path}: {exc}") from None
            replaced = [state_dir] if state_dir.exists() else []
            if config_text is not None and config_path.exists() and config_path.read_text("utf-8") != config_text:
                replaced.append(config_path)
            set_aside = [_set_aside(p, stamp) for p in replaced]
            os.replace(restored, state_dir)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
    os.chmod(state_dir, 0o700)
    if config_text is not None and not config_path.exists():
        write_atomically(config_path, config_text)
    audit.info("backup %s restored into %s", path, state_dir)
    return RestoreResult(manifest, config_path, state_dir, set_aside)


def _config_text(tar: tarfile.TarFile, path: Path, config_path: Path) -> str | None:
    try:
        member = tar.extractfile(CONFIG)
    except KeyError:
        return None
    if member is None:
        return None
    try:
        return member.read().decode("utf-8")
    except UnicodeDecodeError:
        raise BackupError(f"{path}: {CONFIG} is not UTF-8 text") from None


def _target(config_text: str | None, config_path: Path, default_state_dir: Path) -> tuple[Path, str]:
    """The state folder the restored configuration names (relative paths count from its file), and its
    [storage] url ("" for the embedded SQLite file)."""
    if config_text is None:
        return default_state_dir, ""
    try:
        config = parse_config(config_text, str(config_path), base_dir=config_path.absolute().parent,
                              default_state_dir=default_state_dir)
    except ConfigError as exc:
        raise BackupError("the backup's configuration is not valid for this Parlour: "
                          + "; ".join(exc.problems)) from None
    return config.server.state_dir, config.storage.url


def _in_use(state_dir: Path) -> bool:
    """True when the state folder holds an account or an uploaded file (a fresh install holds neither)."""
    database = state_dir / DATABASE_NAME
    if database.is_file():
        try:
            if summarize(database).counts.get("accounts", 0) > 0:
                return True
        except BadDatabase:
            return True  # unreadable: not ours to judge empty
    uploads = state_dir / "uploads"
    return uploads.is_dir() and any(p.is_file() for p in uploads.rglob("*"))


def _set_aside(path: Path, stamp: str) -> Path:
    aside = path.with_name(f"{path.name}.{stamp}")
    os.replace(path, aside)
    return aside


__all__ = ["BackupError", "BackupResult", "Manifest", "RestoreResult", "default_name", "make_backup",
           "read_manifest", "restore_backup"]
