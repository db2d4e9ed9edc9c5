"""Writing a file so that readers (and a crash) see either the old content or the new, never half; and
keeping state files to their owner whatever the umask."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, text: str | bytes, *, mode: int = 0o640,
                     protect: Callable[[Path], None] | None = None) -> None:
    """Replace `path` with `text` (UTF-8, or bytes as they are) in one rename; the rename itself is made
    durable too. `protect` is called on the still empty new file (e.g. to set a Windows ACL before a
    secret is written into it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if protect is not None:
            try:
                protect(Path(tmp))
            except BaseException:
                os.close(fd)  # not yet owned by a file object
                raise
        with (os.fdopen(fd, "w", encoding="utf-8") if isinstance(text, str) else os.fdopen(fd, "wb")) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        dirfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)


def private_dir(path: Path) -> Path:
    """Make `path` (and missing parents) and keep it to its owner (0700), whatever the umask: a folder
    made earlier with a laxer one, by hand or by an older version, is closed too."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix" and path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def private_file(path: Path, *, create: bool = True) -> None:
    """Keep `path` to its owner (0600): create it empty with that mode when missing (and `create`), else
    close an existing one that group or others could read."""
    if create:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    with contextlib.suppress(FileNotFoundError):
        if os.name == "posix" and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)


__all__ = ["private_dir", "private_file", "write_atomically"]


def secret_file(path: Path, size: int = 32) -> bytes:
    """The random secret kept in `path` (owner-only), made on first use; concurrent first uses agree."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(size))
                f.flush()
                os.fsync(f.fileno())
    return path.read_bytes()
