"""Setup mode: with no configuration file, serve only the wizard; when it completes, write the
configuration and start the full server in this process (no restart), the wizard's routes gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.app.parlour import Parlour
from appliance.app.storage import Storage
from appliance.net.interfaces import lan_addresses
from appliance.services.setup import SETUP_INTERFACES, SETUP_PORT, SetupAnswers, SetupService
from appliance.services.setup_token import SetupToken
from appliance.web import pages
from appliance.web.setup import wizard as wizard_pages
from appliance.web.setup.mode import qr_svg, setup_urls

log = logging.getLogger(__name__)

ADDRESS_CHECK_INTERVAL = 5.0  # seconds between looks at this machine's addresses while setup is open


class SetupMode:
    """Runs the wizard until setup completes, then the server; `server` is set from then on."""

    def __init__(self, *, config_path: Path, state_dir: Path, port: int = SETUP_PORT,
                 interfaces: tuple[str, ...] = SETUP_INTERFACES, extra: dict[str, dict[str, object]] | None = None,
                 lan: Callable[[], list[str]] = lan_addresses) -> None:
        self.config_path = config_path
        self.state_dir = state_dir
        self.port = port
        self.interfaces = interfaces
        self.extra = extra or {}  # more config keys to write (tests: loopback listeners on free ports)
        self.token = SetupToken.load_or_create(state_dir)
        self.server: Parlour | None = None
        self.storage: Storage | None = None  # opened once: the wizard's administrator, then the server's
        self.switched = asyncio.Event()
        self.failed: BaseException | None = None
        self.urls: list[str] = []  # the wizard's URLs as last announced
        self.lan = lan  # this machine's LAN addresses (tests give their own)
        self._runner: web.AppRunner | None = None

    async def start(self) -> list[str]:
        """Serve the wizard; returns the URLs to print."""
        self.storage = await Storage.open(self.state_dir)
        wizard = wizard_pages.Wizard(token=self.token, state_dir=self.state_dir, finish=self._finish)
        wizard.answers.extra = self.extra
        app = web.Application(middlewares=[pages.page_middleware], client_max_size=2 << 20)
        pages.static_routes(app)
        wizard_pages.setup(app, wizard)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        for interface in self.interfaces:
            site = web.TCPSite(self._runner, interface, self.port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                if interface == "::" and len(self.interfaces) > 1:
                    log.info("setup: IPv6 listener unavailable: %s", exc)
                    continue
                raise
            if self.port == 0:
                self.port = self._runner.addresses[0][1]
        self.urls = self._current_urls()
        for url in self.urls:
            log.warning("Setup mode: open %s", url)
        return self.urls

    def _current_urls(self) -> list[str]:
        """One URL per LAN address when listening on every interface, else per listening address."""
        wildcard = "0.0.0.0" in self.interfaces or "::" in self.interfaces
        return setup_urls(self.port, self.token.value, self.lan() if wildcard else list(self.interfaces))

    async def announce_new_addresses(self, announce: Callable[[list[str]], None], *,
                                     interval: float = ADDRESS_CHECK_INTERVAL) -> None:
        """Until setup completes: when the machine's addresses change (DHCP answered after the start, or
        gave another address), log the wizard's URLs again and pass them to `announce`. A machine that
        started before its network did would otherwise have shown only http://127.0.0.1:5280/..."""
        while not self.switched.is_set():
            await asyncio.sleep(interval)
            urls = await asyncio.to_thread(self._current_urls)  # may run `ip`: not on the loop
            if urls != self.urls and not self.switched.is_set():
                self.urls = urls
                for url in urls:
                    log.warning("Setup mode: the address changed; open %s", url)
                announce(urls)

    async def _finish(self, answers: SetupAnswers) -> dict[str, Any]:
        assert self.storage is not None
        setup = SetupService(config_path=self.config_path, state_dir=self.state_dir,
                             accounts=self.storage.stores.accounts)
        config = await setup.complete(answers)
        self.token.consume()
        log.info("setup completed: %s written, administrator %s", self.config_path, answers.admin_jid())
        asyncio.get_running_loop().create_task(self._switch(config), name="setup-switch")
        admin = answers.admin_jid()
        return {"jid": admin, "domain": config.hosts[0].name, "xmpp_uri": f"xmpp:{admin}",
                "qr": qr_svg(f"xmpp:{admin}"), "c2s_port": config.c2s.port,
                "ca_path": str(self.state_dir / "certs" / "ca.pem"), "certificate": answers.certificate,
                "https_port": config.http.tls_port if config.http.enabled and config.http.https else 0}

    async def _switch(self, config: Any) -> None:
        """Stop the wizard (its routes vanish with its application), then start the full server."""
        await asyncio.sleep(0.2)  # let the done page reach the browser
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        try:
            if config.storage.url and self.storage is not None:  # PostgreSQL was chosen: the server opens it
                await self.storage.close()
                self.storage = None
            server = Parlour(config, storage=self.storage)
            await server.start()
        except BaseException as exc:
            log.exception("the server could not start with the new configuration")
            self.failed = exc
        else:
            self.server = server
        self.switched.set()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.server is not None:
            await self.server.stop()  # closes the storage it was handed
        elif self.storage is not None:
            await self.storage.close()
        self.storage = None


__all__ = ["SetupMode"]
