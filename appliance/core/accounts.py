"""Accounts: the one service the CLI, web console, in-band registration and ad-hoc commands share.

Passwords are never stored: setting one derives SCRAM keys for SHA-1, SHA-256 and SHA-512, each with a
fresh random salt. Key derivation is deliberately slow, so it always runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from appliance.storage.api import HASH_NAMES, AccountStore, AlreadyExists, ScramKeys
from appliance.util.lru import LruDict
from appliance.xmpp.jid import JID
from appliance.xmpp.sasl import scram

log = logging.getLogger(__name__)

SALT_BYTES = 16
PLAIN_HASH = "SHA-256"  # the key set PLAIN passwords are checked against

# Verifying a password for an unknown account still costs a derivation (no timing oracle);
# the salt is fixed because the result is thrown away.
_DECOY_SALT = b"parlour-no-such-account"
VERIFIED_CACHE_SIZE = 100_000
# A PLAIN check derives one SHA-256 key: at 4,096 rounds that is 0.42 ms, cheaper than the hop to a
# worker thread and back (GIL hand-overs: 1.10 against 1.35 ms of CPU per cold login at 1,000
# concurrent logins, benchmarks/profile_login.py), so up to this many rounds it runs on the event loop.
# SCRAM logins derive nothing; creating accounts and changing passwords (three hashes) stay threaded.
INLINE_ITERATIONS = 10_000


class VerifiedPasswords:
    """Remembers recent successful PLAIN checks so a reconnecting client skips PBKDF2.

    Only a keyed HMAC of (password, stored key) is kept, under a per-process random key: it reveals
    nothing about the password, and a password change (new stored key) invalidates it by itself. A wrong
    password never matches, so guessing still pays the full derivation.
    """

    __slots__ = ("_entries", "_key")

    def __init__(self, size: int = VERIFIED_CACHE_SIZE) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: LruDict[tuple[str, str], bytes] = LruDict(size)

    def _tag(self, password: str, stored_key: bytes) -> bytes:
        return hmac.new(self._key, password.encode() + b"\0" + stored_key, hashlib.sha256).digest()

    def check(self, user: tuple[str, str], password: str, stored_key: bytes) -> bool:
        tag = self._entries.get(user)
        return tag is not None and hmac.compare_digest(tag, self._tag(password, stored_key))

    def remember(self, user: tuple[str, str], password: str, stored_key: bytes) -> None:
        self._entries.put(user, self._tag(password, stored_key))

    def forget(self, user: tuple[str, str]) -> None:
        self._entries.pop(user)


class PasswordDirectory(Protocol):
    """A directory (LDAP, appliance/directory) that checks the passwords of accounts without local keys."""

    def serves(self, host: str) -> bool:
        """Whether the users of `host` may be in the directory."""
        ...

    async def verify(self, username: str, password: str) -> str | None:
        """The user's entry (DN) when the password is theirs, else None; raises ConnectionError when the
        directory cannot answer."""
        ...


class DirectoryUnavailable(Exception):
    """The directory could not check a password now (the client should try again later)."""


class AccountExists(Exception):
    """The account to create is already registered."""


class AccountNotFound(Exception):
    """The account does not exist."""


class WeakPassword(ValueError):
    """The password is empty, too short, or not usable for SCRAM."""


class ManagedByDirectory(WeakPassword):
    """The account's password is kept in the directory; it is changed there, never stored here."""


def derive_all(password: str, iterations: int) -> list[ScramKeys]:
    """SCRAM keys for every supported hash, each with a fresh salt (CPU-heavy: call from a thread)."""
    keys: list[ScramKeys] = []
    for hash_name in HASH_NAMES:
        salt = secrets.token_bytes(SALT_BYTES)
        stored_key, server_key = scram.derive_keys(password, hash_name, salt, iterations)
        keys.append(ScramKeys(hash_name, salt, iterations, stored_key, server_key))
    return keys


def _user(jid: JID) -> tuple[str, str]:
    if jid.local is None:
        raise ValueError(f"{jid} is not an account address (it has no localpart)")
    return jid.domain, jid.local


class AccountService:
    """Create, delete and authenticate accounts over an ``AccountStore``."""

    def __init__(self, accounts: AccountStore, *, iterations: int, min_password_length: int = 8,
                 directory: PasswordDirectory | None = None) -> None:
        if iterations < 1:
            raise ValueError("SCRAM iterations must be positive")
        self._accounts = accounts
        self.directory = directory
        self._iterations = iterations
        self._min_length = max(1, min_password_length)
        self._verified = VerifiedPasswords()
        self._watchers: list[Callable[[str], Awaitable[None]]] = []

    def watch(self, watcher: Callable[[str], Awaitable[None]]) -> Callable[[], None]:
        """Call `watcher(host)` after an account of `host` is created or deleted (shared rosters follow);
        returns the undo."""
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher) if watcher in self._watchers else None

    async def _changed(self, host: str) -> None:
        for watcher in list(self._watchers):
            try:
                await watcher(host)
            except Exception:  # the account change itself is done; a watcher's bug must not undo it
                log.exception("account watcher %r failed", watcher)

    def check_password(self, password: str) -> None:
        """Raise ``WeakPassword`` unless the password may be set."""
        if len(password) < self._min_length:
            raise WeakPassword(f"passwords need at least {self._min_length} characters")

    async def _derive(self, password: str) -> list[ScramKeys]:
        self.check_password(password)
        try:
            return await asyncio.to_thread(derive_all, password, self._iterations)
        except ValueError as exc:  # SASLprep refused the password (e.g. control characters)
            raise WeakPassword(f"password not usable: {exc}") from exc

    async def create(self, jid: JID, password: str) -> None:
        """Register ``jid``'s bare account; raises ``AccountExists`` or ``WeakPassword``."""
        host, username = _user(jid)
        if await self._accounts.exists(host, username):
            raise AccountExists(f"{username}@{host}")
        keys = await self._derive(password)
        try:
            await self._accounts.create(host, username, keys)
        except AlreadyExists as exc:  # lost a race with another create
            raise AccountExists(f"{username}@{host}") from exc
        await self._changed(host)

    async def create_many(self, host: str, items: list[tuple[str, str]]) -> None:
        """Register many ``(username, password)`` accounts at once, all or none (bulk import, benchmarks)."""
        users = [(JID.make(username, host), password) for username, password in items]
        for _, password in users:
            self.check_password(password)
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="parlour-scram")
        try:
            derived = await asyncio.gather(
                *(loop.run_in_executor(pool, derive_all, password, self._iterations) for _, password in users)
            )
        except ValueError as exc:  # SASLprep refused one of the passwords
            raise WeakPassword(f"password not usable: {exc}") from exc
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # never block the loop joining threads
        rows = [(_user(jid)[1], keys) for (jid, _), keys in zip(users, derived, strict=True)]
        domain = users[0][0].domain if users else host
        try:
            await self._accounts.create_many(domain, rows)
        except AlreadyExists as exc:
            raise AccountExists(str(exc)) from exc
        await self._changed(domain)

    async def delete(self, jid: JID) -> None:
        """Delete the account and everything stored for it; raises ``AccountNotFound``."""
        host, username = _user(jid)
        self._verified.forget((host, username))
        if not await self._accounts.delete(host, username):
            raise AccountNotFound(f"{username}@{host}")
        await self._changed(host)

    async def set_password(self, jid: JID, password: str) -> None:
        """Replace all SCRAM keys; raises ``AccountNotFound``, ``WeakPassword`` or ``ManagedByDirectory``."""
        host, username = _user(jid)
        if await self._accounts.directory_dn(host, username) is not None:
            raise ManagedByDirectory(f"the password of {username}@{host} is kept in the company directory; "
                                     "change it there")
        keys = await self._derive(password)
        if not await self._accounts.set_keys(host, username, keys):
            raise AccountNotFound(f"{username}@{host}")

    async def exists(self, jid: JID) -> bool:
        host, username = _user(jid)
        return await self._accounts.exists(host, username)

    async def set_disabled(self, jid: JID, disabled: bool) -> None:
        """Disable (no login, data kept) or re-enable the account; raises ``AccountNotFound``."""
        host, username = _user(jid)
        self._verified.forget((host, username))
        if not await self._accounts.set_disabled(host, username, disabled):
            raise AccountNotFound(f"{username}@{host}")

    async def is_disabled(self, jid: JID) -> bool:
        host, username = _user(jid)
        return await self._accounts.is_disabled(host, username)

    async def disabled(self, host: str) -> list[str]:
        """The disabled usernames on ``host``, sorted."""
        return await self._accounts.disabled(host)

    async def list(self, host: str, *, prefix: str = "", limit: int = 1000, offset: int = 0) -> list[str]:
        """Usernames on ``host``, sorted."""
        return await self._accounts.list_users(host, prefix=prefix, limit=limit, offset=offset)

    async def count(self, host: str) -> int:
        return await self._accounts.count(host)

    async def scram_keys(self, jid: JID, hash_name: str) -> ScramKeys | None:
        """The stored keys for SCRAM authentication, None for an unknown account."""
        host, username = _user(jid)
        return await self._accounts.get_keys(host, username, hash_name)

    def directory_serves(self, host: str) -> bool:
        """Whether passwords of `host`'s accounts without local keys are checked by a directory."""
        return self.directory is not None and self.directory.serves(host)

    async def directory_dn(self, jid: JID) -> str | None:
        """The directory entry of an account the directory authenticates; None for a local one."""
        host, username = _user(jid)
        return await self._accounts.directory_dn(host, username)

    async def provision(self, jid: JID, dn: str, *, notify: bool = True) -> bool:
        """Make sure the account of a directory user exists (no password is stored for it); True when it
        was created now. `notify` tells the account watchers (shared rosters) of a new account."""
        host, username = _user(jid)
        created = await self._accounts.provision(host, username, dn)
        if created and notify:
            await self._changed(host)
        return created

    async def _verify_in_directory(self, jid: JID, password: str) -> bool:
        assert self.directory is not None and jid.local is not None
        try:
            dn = await self.directory.verify(jid.local, password)
        except ConnectionError as exc:
            log.warning("login of %s: the directory cannot check passwords now: %s", jid, exc)
            raise DirectoryUnavailable(str(exc)) from None
        if dn is None:
            return False
        await self.provision(jid, dn)
        return True

    async def verify_plain(self, jid: JID, password: str) -> bool:
        """Check a cleartext password (SASL PLAIN, web login) in comparable time for unknown users; an
        account without local keys on a host with a directory is checked there (raises
        ``DirectoryUnavailable`` when the directory cannot answer). An account that has no key of PLAIN's
        hash (one imported with SCRAM-SHA-1 keys only, XEP-0227) is checked against the keys it has, and on
        success gets every hash from the password it just proved."""
        keys = None if jid.local is None else await self._plain_keys(jid)
        if keys is None and jid.local is not None and self.directory_serves(jid.domain):
            return await self._verify_in_directory(jid, password)
        user = (jid.domain, jid.local or "")
        if keys is not None and self._verified.check(user, password, keys.stored_key):
            return True
        hash_name = keys.hash_name if keys else PLAIN_HASH
        salt, iterations = (keys.salt, keys.iterations) if keys else (_DECOY_SALT, self._iterations)
        try:
            if iterations <= INLINE_ITERATIONS:
                stored_key, _ = scram.derive_keys(password, hash_name, salt, iterations)
            else:
                stored_key, _ = await asyncio.to_thread(scram.derive_keys, password, hash_name, salt, iterations)
        except ValueError:  # SASLprep refused it: no stored password can match
            return False
        if keys is None or not hmac.compare_digest(stored_key, keys.stored_key):
            return False
        if keys.hash_name != PLAIN_HASH:
            await self._complete_keys(jid, password)
        else:
            self._verified.remember(user, password, keys.stored_key)
        return True

    async def _plain_keys(self, jid: JID) -> ScramKeys | None:
        """The keys a PLAIN password is checked against: SHA-256's, else the strongest the account has."""
        for hash_name in (PLAIN_HASH, *(h for h in reversed(HASH_NAMES) if h != PLAIN_HASH)):
            keys = await self.scram_keys(jid, hash_name)
            if keys is not None:
                return keys
        return None

    async def _complete_keys(self, jid: JID, password: str) -> None:
        """Replace an imported account's partial key set by keys of every hash (the password is proven)."""
        host, username = _user(jid)
        try:
            keys = await asyncio.to_thread(derive_all, password, self._iterations)
        except ValueError:
            return
        await self._accounts.set_keys(host, username, keys)
