"""Entry script of the frozen executable: the same as `python -m appliance` and the `parlour` command.

The one-file build (the portable download) unpacks itself at every start into $TMPDIR, else /tmp. A
server runs for months: temp cleaners (systemd-tmpfiles ages /tmp on Debian 13) then delete the unpacked
modules, templates and static files under it. PyInstaller's `runtime_tmpdir` is a fixed string (no ~ or
$VAR expansion in 6.22; a relative one is taken from the working folder), so the executable moves itself:
unpacked in /tmp or /var/tmp, it runs itself again with TMPDIR set to its cache folder, which no cleaner
touches (a TMPDIR the caller set elsewhere is kept).
A `noexec` /tmp stops the bootloader before any Python runs: there, `TMPDIR=~/.cache ./parlour ...`.
The one-folder build (.deb, VM image) unpacks nothing and is left alone.
"""

import os
import shutil
import sys
from pathlib import Path

REEXEC_MARK = "PARLOUR_UNPACKED_IN"  # set for the second run; carries the caller's TMPDIR back


TEMP_FOLDERS = (Path("/tmp"), Path("/var/tmp"))  # what the bootloader picks, and cleaners age


def cache_folder() -> Path:
    """Where the one-file build unpacks: $XDG_CACHE_HOME/parlour, else /var/cache/parlour for root and
    ~/.cache/parlour for everyone else."""
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "parlour"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/cache/parlour")
    return Path(os.path.expanduser("~")) / ".cache" / "parlour"


def unpack_elsewhere() -> None:
    """Run again from the cache folder when this one-file run unpacked itself in a temp folder."""
    unpacked = Path(getattr(sys, "_MEIPASS", ""))
    if sys.platform == "win32" or not unpacked.name.startswith("_MEI"):
        return  # not a one-file build (the one-folder build's files live in _internal/)
    if REEXEC_MARK in os.environ:
        caller_tmpdir = os.environ.pop(REEXEC_MARK)
        if caller_tmpdir:
            os.environ["TMPDIR"] = caller_tmpdir
        else:
            os.environ.pop("TMPDIR", None)
        return
    if unpacked.parent not in TEMP_FOLDERS:
        return  # unpacked where the caller's TMPDIR said: theirs to choose
    folder = cache_folder()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return  # no cache folder (read-only home): stay where we are
    os.environ[REEXEC_MARK] = os.environ.get("TMPDIR", "")
    os.environ["TMPDIR"] = str(folder)
    # A new top-level run of the bootloader (which unpacks), not a child reusing this run's folder.
    os.environ["PYINSTALLER_RESET_ENVIRONMENT"] = "1"
    # Nothing runs from the first unpacked copy after exec (its bootloader only waits and forwards
    # signals): free it now rather than hold ~100 MB of a tmpfs /tmp for the server's lifetime. The
    # empty folder stays for that bootloader to remove at exit (else it warns that it could not).
    for entry in unpacked.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])


unpack_elsewhere()

from appliance.cli.main import main  # noqa: E402 - after the move

raise SystemExit(main())
