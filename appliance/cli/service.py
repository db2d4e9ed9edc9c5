"""`parlour service run|install|remove|wizard`: Parlour as a Windows service (pywin32; RECIPES.md §5).

The NSIS installer (windows/parlour.nsi) registers `"parlour.exe" service run` with sc.exe; `install` and
`remove` do the same by hand for a copy that was not installed by it. The service runs exactly
`parlour run` with the platform layout, %ProgramData%\\Parlour for config and state (no parlour.toml
there yet: setup mode, the wizard on port 5280), and writes its log to parlour.log there. `wizard` (the
Start-menu entry) opens the setup page in the browser.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
import traceback
import webbrowser
from pathlib import Path
from typing import IO

from appliance.platform import paths
from appliance.services.setup_token import TOKEN_FILE
from appliance.util.logfile import RotatingLogFile

SERVICE_NAME = "Parlour"
DISPLAY_NAME = "Parlour XMPP server"
DESCRIPTION = "Parlour XMPP server appliance"
LOG_NAME = "parlour.log"
LOG_MAX_BYTES = 10 * 1024 * 1024

ACTIONS = ("run", "install", "remove", "wizard")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("service", help="the Windows service: run (by Windows), install, remove, wizard")
    parser.add_argument("action", choices=ACTIONS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if sys.platform != "win32":
        print("parlour service: Windows only (on Linux the package's systemd unit runs `parlour run`)",
              file=sys.stderr)
        return 2
    return _windows_action(args.action)


def wizard_url(state_dir: Path, port: int | None = None, host: str = "localhost") -> str:
    """The setup page, with the one-time token when setup is still open and the token file readable."""
    if port is None:
        from appliance.services.setup import SETUP_PORT

        port = SETUP_PORT
    try:
        token = (state_dir / TOKEN_FILE).read_text(encoding="ascii").strip()
    except OSError:
        token = ""
    return f"http://{host}:{port}/setup" + (f"?token={token}" if token else "")


def open_log(path: Path, max_bytes: int = LOG_MAX_BYTES) -> IO[str]:
    """The service's log file (line-buffered, appended); past max_bytes, at start or while running, it
    is kept as `.1` and a new one begins."""
    return RotatingLogFile(path, max_bytes)  # type: ignore[return-value]


class LoopWatcher(asyncio.DefaultEventLoopPolicy):  # type: ignore[misc,valid-type]
    """Remembers the loop that `asyncio.run` makes, so another thread can cancel what runs on it."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        self.loop = super().new_event_loop()
        self.ready.set()
        return self.loop

    def cancel_all(self) -> None:
        """Thread-safe: cancel every task of the remembered loop (the server then stops cleanly)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: [task.cancel() for task in asyncio.all_tasks(loop)])


def serve_as_service(watcher: LoopWatcher) -> int:
    """`parlour run` in this thread with its output in parlour.log; returns when cancelled or failed."""
    from appliance.cli import main as cli_main  # late: main imports this module

    state_dir = paths.default_state_dir(dev=False)
    log = open_log(state_dir / LOG_NAME)
    sys.stdout = sys.stderr = log
    asyncio.set_event_loop_policy(watcher)
    try:
        return cli_main.main(["run", "--config", str(paths.default_config_path(dev=False))])
    except asyncio.CancelledError:
        return 0
    except Exception:  # the service manager sees only the exit code: keep the reason in the log
        traceback.print_exc()
        return 1
    finally:
        log.flush()


def _windows_action(action: str) -> int:  # pragma: no cover - Windows only (tested under Wine)
    import servicemanager
    import win32service
    import win32serviceutil
    from win32com.shell import shell, shellcon

    # The service's environment may name another folder (Wine: C:\users\Public); ask for the known one
    # (os.environ is case-insensitive on Windows: paths.layout reads it as "ProgramData").
    os.environ["PROGRAMDATA"] = shell.SHGetFolderPath(0, shellcon.CSIDL_COMMON_APPDATA, None, 0)

    class ParlourService(win32serviceutil.ServiceFramework):  # type: ignore[misc]
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = DISPLAY_NAME
        _svc_description_ = DESCRIPTION

        def __init__(self, args: list[str]) -> None:
            super().__init__(args)
            self.watcher = LoopWatcher()

        def SvcStop(self) -> None:
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
            self.watcher.cancel_all()

        def SvcDoRun(self) -> None:
            servicemanager.LogInfoMsg(f"{SERVICE_NAME}: starting; log in {paths.default_state_dir(dev=False)}")
            code = serve_as_service(self.watcher)
            if code:  # a non-zero exit makes the service manager apply the restart-on-failure actions
                servicemanager.LogErrorMsg(f"{SERVICE_NAME}: stopped with exit code {code}; see {LOG_NAME}")
                os._exit(code)

    if action == "run":
        servicemanager.Initialize()
        servicemanager.PrepareToHostSingle(ParlourService)
        servicemanager.StartServiceCtrlDispatcher()
        return 0
    if action == "install":
        win32serviceutil.InstallService(
            None, SERVICE_NAME, DISPLAY_NAME, startType=win32service.SERVICE_AUTO_START,
            exeName=sys.executable, exeArgs="service run", description=DESCRIPTION,
        )
        win32serviceutil.StartService(SERVICE_NAME)
        print(f"installed and started the service {SERVICE_NAME}")
        return 0
    if action == "remove":
        with contextlib.suppress(Exception):
            win32serviceutil.StopService(SERVICE_NAME)
        win32serviceutil.RemoveService(SERVICE_NAME)
        print(f"removed the service {SERVICE_NAME}; data in {paths.default_state_dir(dev=False)} kept")
        return 0
    url = wizard_url(paths.default_state_dir(dev=False))
    print(url)
    webbrowser.open(url)
    return 0
