"""Keeping a file to the account the server runs as, on every platform.

On POSIX that is mode 0600 (root may always read). Windows ignores modes: a file takes the ACL its folder
passes on, and outside the installer's folder (which windows/parlour.nsi closes with icacls) that lets
every user read it. There the file gets a protected ACL of its own naming the process's account (the
service's `NT SERVICE\\Parlour` when run as the service), SYSTEM and Administrators, the same three the
installer grants the state folder.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["keep_to_owner"]


def keep_to_owner(path: Path) -> None:
    """Let only this process's account (and root, or SYSTEM and Administrators on Windows) open `path`.
    Call it on a file before writing a secret into it."""
    if os.name == "nt":  # pragma: no cover - Windows only
        _windows_owner_only(path)
    else:
        os.chmod(path, 0o600)


def _windows_owner_only(path: Path) -> None:  # pragma: no cover - Windows only (pywin32 ships in the build)
    import ntsecuritycon
    import win32api
    import win32security

    token = win32security.OpenProcessToken(win32api.GetCurrentProcess(), win32security.TOKEN_QUERY)
    account, _ = win32security.GetTokenInformation(token, win32security.TokenUser)
    dacl = win32security.ACL()
    for sid in (account, win32security.CreateWellKnownSid(win32security.WinLocalSystemSid),
                win32security.CreateWellKnownSid(win32security.WinBuiltinAdministratorsSid)):
        dacl.AddAccessAllowedAce(win32security.ACL_REVISION, ntsecuritycon.FILE_ALL_ACCESS, sid)
    # PROTECTED: nothing inherited from the folder (e.g. ProgramData's "Users may read") is added back.
    win32security.SetNamedSecurityInfo(
        str(path), win32security.SE_FILE_OBJECT,
        win32security.DACL_SECURITY_INFORMATION | win32security.PROTECTED_DACL_SECURITY_INFORMATION,
        None, None, dacl, None)
