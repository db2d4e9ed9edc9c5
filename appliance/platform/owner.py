"""Who owns the state folder: drop to that user when a command runs as root, and say how to fix ownership.

`sudo parlour cert renew` (or `cert import`) must not leave root-owned files behind: the service runs as
its own user (`_parlour` in the .deb) and could no longer read them. Commands that write to the state
folder call ``become_state_owner`` once they hold what needs root (a port below 1024, a key file only
root may read), so every file they make belongs to the service from the start.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["become_state_owner", "owner_name", "ownership_fix", "user_name"]

log = logging.getLogger(__name__)


def owner_name(path: Path) -> str:
    """The user name (or uid) owning ``path``; "" when it cannot be told."""
    try:
        return user_name(path.stat().st_uid)
    except OSError:
        return ""


def user_name(uid: int | None = None) -> str:
    """The name of ``uid`` (default: the effective user), or the number when it has none."""
    if uid is None:
        if os.name != "posix":
            import getpass

            return getpass.getuser()
        uid = os.geteuid()
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def become_state_owner(state_dir: Path) -> bool:
    """Run as the owner of ``state_dir`` from now on if we are root and it is not; whether we switched."""
    if os.name != "posix" or os.geteuid() != 0:
        return False
    try:
        st = state_dir.stat()
    except OSError:
        return False
    if st.st_uid == 0:
        return False
    os.setgroups([])
    try:
        import pwd

        os.initgroups(pwd.getpwuid(st.st_uid).pw_name, st.st_gid)
    except KeyError:
        pass  # a uid without a passwd entry: no supplementary groups
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)
    log.info("running as %s, the owner of %s", owner_name(state_dir), state_dir)
    return True


def ownership_fix(path: Path, state_dir: Path) -> str:
    """The command that gives ``path`` back to the state folder's owner (for error messages)."""
    owner = owner_name(state_dir)
    if os.name != "posix" or not owner:
        return f"make {path} readable by the user Parlour runs as"
    return f"sudo chown -R {owner}: {state_dir}"
