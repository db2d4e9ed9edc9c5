"""LDAP client for logins (search, then bind as the user), profiles and nested groups, with a pool of
service-account connections, timeouts, TLS that always checks the certificate, and a message an
administrator can act on for every failure."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars

from appliance.config.model import LdapConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

IN_CHAIN = "1.2.840.113556.1.4.1941"  # Active Directory's LDAP_MATCHING_RULE_IN_CHAIN (transitive membership)
MEMBER_ATTRIBUTES = ("member", "uniqueMember", "memberUid")
NAME_ATTRIBUTES = ("displayName", "cn")
PROFILE_ATTRIBUTES = ("cn", "displayName", "givenName", "sn", "mail", "telephoneNumber", "mobile", "jpegPhoto",
                      "thumbnailPhoto")
INVALID_CREDENTIALS = 49
NO_SUCH_OBJECT = 32
MAX_GROUP_DEPTH = 32  # nested groups deeper than this are a loop or a mistake


class DirectoryError(ConnectionError):
    """The directory could not answer; the message says what to check. A ConnectionError, so the login
    path (core/accounts.py) tells the client "try again later" rather than "wrong password"."""


class DirectoryUnreachable(DirectoryError):
    """No connection to the directory server."""


class DirectoryTlsFailure(DirectoryError):
    """TLS with the directory failed (certificate not trusted, wrong name, StartTLS refused)."""


class DirectoryBindRefused(DirectoryError):
    """The service account's DN or password was refused."""


class DirectoryRequestFailed(DirectoryError):
    """A search was refused (base DN missing, filter not understood, time limit)."""


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user entry as Parlour uses it: the username, and what goes into the vCard."""

    username: str
    dn: str
    full_name: str = ""
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    phone: str = ""
    photo: bytes = b""
    photo_type: str = ""


@dataclass(frozen=True, slots=True)
class Member:
    """A user found in a directory group: their entry and the name to show for them."""

    dn: str
    name: str = ""


@dataclass(slots=True)
class DirectoryStatus:
    """What the console shows: is the directory answering, how many users, what went wrong last."""

    reachable: bool | None = None  # None: not tried yet
    checked_at: float = 0.0
    users_found: int | None = None  # users matching the filter at the last check (up to COUNT_LIMIT)
    last_error: str = ""
    last_error_at: float = 0.0
    logins: int = 0
    failed_logins: int = 0


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The result of "test the connection and find one user" (wizard, console, `parlour check`)."""

    ok: bool
    steps: tuple[str, ...]  # what worked, in order
    error: str = ""
    users_found: int | None = None
    user: DirectoryUser | None = None


COUNT_LIMIT = 1000  # a check counts users up to this many (a size limit keeps it cheap on big directories)
GROUP_LIST_LIMIT = 500  # groups offered to pick from in the console


def _dn_key(dn: str) -> str:
    """A DN in a form for comparing (case and spaces after separators do not matter)."""
    return ",".join(part.strip() for part in dn.lower().split(","))


def _text(values: list[bytes] | None) -> str:
    if not values:
        return ""
    return values[0].decode("utf-8", "replace").strip()


def _name(raw: dict[str, list[bytes]]) -> str:
    return _text(raw.get("displayname")) or _text(raw.get("cn"))


def _photo_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"GIF8"):
        return "image/gif"
    return "image/jpeg"  # jpegPhoto and Active Directory's thumbnailPhoto are JPEG


@dataclass(slots=True)
class _Pool:
    """Bound service-account connections, each used by one thread at a time, at most `size` open."""

    open_: Callable[[], ldap3.Connection]
    size: int
    wait: float
    idle: list[ldap3.Connection] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    slots: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.size)

    @contextmanager
    def connection(self, *, fresh: bool = False) -> Iterator[ldap3.Connection]:
        if not self.slots.acquire(timeout=self.wait):
            raise DirectoryUnreachable("every connection to the directory is busy; raise ldap.pool_size or "
                                       "check that the directory answers")
        try:
            with self.lock:
                conn = None if fresh or not self.idle else self.idle.pop()
            if conn is None:
                conn = self.open_()
            healthy = False
            try:
                yield conn
                healthy = True
            finally:
                if healthy and not conn.closed:
                    with self.lock:
                        self.idle.append(conn)
                else:
                    _unbind(conn)
        finally:
            self.slots.release()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for conn in idle:
            _unbind(conn)


def _unbind(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except Exception:  # closing a dead connection: nothing left to do
        log.debug("closing a directory connection failed", exc_info=True)


class LdapDirectory:
    """One configured directory ([ldap]); blocking ldap3 calls run in worker threads."""

    def __init__(self, config: LdapConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.status = DirectoryStatus()
        url = urlsplit(config.uri)
        self.secure = url.scheme == "ldaps"
        self.host = url.hostname or ""
        self.port = url.port or (636 if self.secure else 389)
        self._pool = _Pool(self._service_connection, config.pool_size, config.connect_timeout + config.timeout)

    @property
    def sync_interval(self) -> float:
        return self.config.sync_interval

    @property
    def vcards(self) -> bool:
        return self.config.vcards

    def serves(self, host: str) -> bool:
        return self.config.serves(host)

    def close(self) -> None:
        self._pool.close()

    # -- connections ----------------------------------------------------------------------------

    def _tls(self) -> ldap3.Tls:
        ca_file = str(self.config.ca_file) if self.config.ca_file else None
        try:
            ipaddress.ip_address(self.host)
            sni = None
        except ValueError:
            sni = self.host
        try:
            return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file, sni=sni)
        except ldap_errors.LDAPSSLConfigurationError as exc:
            raise DirectoryTlsFailure(f"ldap.ca_file {ca_file}: {exc}; give the PEM file of the CA that "
                                      "signed the directory's certificate") from None

    def _server(self) -> ldap3.Server:
        plain = not self.secure and not self.config.starttls
        return ldap3.Server(self.host, port=self.port, use_ssl=self.secure, tls=None if plain else self._tls(),
                            connect_timeout=self.config.connect_timeout, get_info=ldap3.NONE)

    def _connect(self, user: str | None, password: str | None) -> ldap3.Connection:
        """An open connection (TLS first unless turned off), bound as `user` or the service account.
        Raises DirectoryError; a refused bind raises DirectoryBindRefused."""
        # ldap3 packs the receive timeout into a socket option as whole seconds: a float breaks open().
        conn = ldap3.Connection(self._server(), user=user, password=password, auto_bind=ldap3.AUTO_BIND_NONE,
                                receive_timeout=max(1, math.ceil(self.config.timeout)), read_only=True,
                                raise_exceptions=False)
        where = f"{self.config.uri}"
        try:
            conn.open()
            if not self.secure and self.config.starttls and not conn.start_tls():
                raise DirectoryTlsFailure(f"{where} refused StartTLS ({conn.result.get('description', '')}): "
                                          "turn on TLS on the directory, or use an ldaps:// URI")
            if not conn.bind():
                code = conn.result.get("result")
                if code == INVALID_CREDENTIALS:
                    raise DirectoryBindRefused("invalid credentials")
                raise DirectoryRequestFailed(f"{where} refused the bind: {conn.result.get('description', '')} "
                                             f"{conn.result.get('message', '')}".strip())
        except DirectoryError:
            _unbind(conn)
            raise
        except (ldap_errors.LDAPStartTLSError, ssl.SSLError) as exc:
            _unbind(conn)
            raise DirectoryTlsFailure(f"TLS with {where} failed: {exc}. {self._tls_hint()}") from None
        except ldap_errors.LDAPException as exc:
            _unbind(conn)
            raise self._communication_error(exc) from None
        return conn

    def _tls_hint(self) -> str:
        return ("Check ldap.ca_file (the CA that signed the directory's certificate) and that the certificate "
                f"names {self.host}.")

    def _communication_error(self, exc: Exception) -> DirectoryError:
        text = str(exc)
        lowered = text.lower()
        if any(word in lowered for word in ("ssl", "certificate", "tls", "hostname")):
            return DirectoryTlsFailure(f"TLS with {self.config.uri} failed: {text}. {self._tls_hint()}")
        if isinstance(exc, ldap_errors.LDAPSocketOpenError):
            return DirectoryUnreachable(f"the directory server {self.config.uri} cannot be reached ({text}); "
                                        "check ldap.uri and that the server runs and lets this machine in")
        return DirectoryUnreachable(f"the connection to {self.config.uri} failed: {text}")

    def _service_connection(self) -> ldap3.Connection:
        config = self.config
        try:
            return self._connect(config.bind_dn or None, config.bind_password or None)
        except DirectoryBindRefused:
            who = config.bind_dn or "an anonymous bind"
            raise DirectoryBindRefused(f"the directory refused the service account ({who}): check ldap.bind_dn "
                                       "and ldap.bind_password") from None

    def _with_service(self, job: Callable[[ldap3.Connection], T]) -> T:
        """Run `job` on a pooled service connection; a connection the server dropped is replaced once."""
        try:
            with self._pool.connection() as conn:
                return job(conn)
        except (ldap_errors.LDAPSessionTerminatedByServerError, ldap_errors.LDAPSocketReceiveError,
                ldap_errors.LDAPSocketSendError, ldap_errors.LDAPSocketOpenError):
            pass
        try:
            with self._pool.connection(fresh=True) as conn:
                return job(conn)
        except ldap_errors.LDAPException as exc:
            raise self._communication_error(exc) from None

    async def _run(self, job: Callable[[], T]) -> T:
        """Run a blocking job in a thread and keep the status up to date."""
        try:
            result = await asyncio.to_thread(job)
        except DirectoryError as exc:
            self.status.reachable = not isinstance(exc, DirectoryUnreachable | DirectoryTlsFailure)
            self.status.last_error, self.status.last_error_at = str(exc), self.clock()
            self.status.checked_at = self.clock()
            raise
        self.status.reachable, self.status.checked_at = True, self.clock()
        return result

    # -- searches -------------------------------------------------------------------------------

    def _search(self, conn: ldap3.Connection, base: str, query: str, attributes: tuple[str, ...], *,
                scope: str = ldap3.SUBTREE, size_limit: int = 0) -> list[tuple[str, dict[str, list[bytes]]]]:
        """(DN, attribute name in lower case -> raw values) of each entry found."""
        ok = conn.search(base, query, search_scope=scope, attributes=list(attributes), size_limit=size_limit,
                         time_limit=max(1, int(self.config.timeout)))
        code = conn.result.get("result")
        if not ok and code not in (0, 4, NO_SUCH_OBJECT):  # 4: size limit exceeded, with the entries so far
            raise DirectoryRequestFailed(f"the directory refused a search under {base!r} with {query}: "
                                         f"{conn.result.get('description', '')} {conn.result.get('message', '')}")
        if code == NO_SUCH_OBJECT and scope != ldap3.BASE:
            raise DirectoryRequestFailed(f"{base!r} does not exist in the directory: check ldap.base")
        out = []
        for entry in conn.response or ():
            if entry.get("type") != "searchResEntry":
                continue  # referrals
            raw = {name.lower(): list(values) for name, values in entry.get("raw_attributes", {}).items()}
            out.append((str(entry["dn"]), raw))
        return out

    def _user_filter(self, username: str | None) -> str:
        """The filter for one user (escaped), or for any user (None)."""
        config = self.config
        value = "*" if username is None else escape_filter_chars(username)
        if "{username}" in config.user_filter:
            return config.user_filter.replace("{username}", value)
        return f"(&{config.user_filter}({config.user_attribute}={value}))"

    def _user(self, conn: ldap3.Connection, username: str) -> DirectoryUser | None:
        attributes = (self.config.user_attribute, *PROFILE_ATTRIBUTES)
        found = self._search(conn, self.config.base, self._user_filter(username), attributes, size_limit=2)
        if len(found) > 1:
            log.warning("directory: %d entries match username %r (%s); nobody logs in with it until the "
                        "filter or the directory makes it unique", len(found), username, self._user_filter(username))
            return None
        if not found:
            return None
        dn, raw = found[0]
        photo = (raw.get("jpegphoto") or raw.get("thumbnailphoto") or [b""])[0]
        return DirectoryUser(
            username=_text(raw.get(self.config.user_attribute.lower())) or username, dn=dn,
            full_name=_name(raw), given_name=_text(raw.get("givenname")),
            family_name=_text(raw.get("sn")), email=_text(raw.get("mail")),
            phone=_text(raw.get("telephonenumber")) or _text(raw.get("mobile")), photo=photo,
            photo_type=_photo_type(photo) if photo else "",
        )

    def _members(self, conn: ldap3.Connection, group_dn: str) -> dict[str, Member]:
        """Username -> entry and name of every user in the group, nested groups included."""
        attribute = self.config.user_attribute
        if self.config.active_directory:
            query = f"(&{self._user_filter(None)}(memberOf:{IN_CHAIN}:={escape_filter_chars(group_dn)}))"
            found = self._search(conn, self.config.base, query, (attribute, *NAME_ATTRIBUTES))
            return {_text(raw.get(attribute.lower())): Member(dn, _name(raw)) for dn, raw in found
                    if raw.get(attribute.lower())}
        out: dict[str, Member] = {}
        seen: set[str] = set()
        level = [group_dn]
        for _depth in range(MAX_GROUP_DEPTH):
            next_level: list[str] = []
            for dn in level:
                if _dn_key(dn) in seen:
                    continue  # a group reached twice (or a loop)
                seen.add(_dn_key(dn))
                self._expand(conn, dn, out, next_level)
            if not next_level:
                break
            level = next_level
        return out

    def _expand(self, conn: ldap3.Connection, dn: str, out: dict[str, Member], groups: list[str]) -> None:
        """Sort the entry at `dn`: a group adds its member DNs to `groups` (memberUid values are usernames);
        a user is added to `out`."""
        attribute = self.config.user_attribute
        wanted = (attribute, *MEMBER_ATTRIBUTES)
        group = self._search(conn, dn, self.config.group_filter, wanted, scope=ldap3.BASE)
        if group:
            raw = group[0][1]
            for name in ("member", "uniquemember"):
                groups.extend(v.decode("utf-8", "replace").split("#")[0] for v in raw.get(name, ()))
            for uid in raw.get("memberuid", ()):
                user = self._user(conn, uid.decode("utf-8", "replace"))
                if user is not None:
                    out[user.username] = Member(user.dn, user.full_name)
            return
        user = self._search(conn, dn, self._user_filter(None), (attribute, *NAME_ATTRIBUTES), scope=ldap3.BASE)
        if user and user[0][1].get(attribute.lower()):
            out[_text(user[0][1][attribute.lower()])] = Member(user[0][0], _name(user[0][1]))

    def _is_member(self, conn: ldap3.Connection, user_dn: str, group_dn: str) -> bool:
        if self.config.active_directory:
            query = f"(memberOf:{IN_CHAIN}:={escape_filter_chars(group_dn)})"
            return bool(self._search(conn, user_dn, query, ("objectClass",), scope=ldap3.BASE))
        return _dn_key(user_dn) in {_dn_key(m.dn) for m in self._members(conn, group_dn).values()}

    # -- what Parlour asks ------------------------------------------------------------------------

    def _verify(self, username: str, password: str) -> str | None:
        def find(conn: ldap3.Connection) -> DirectoryUser | None:
            user = self._user(conn, username)
            if user is not None and self.config.login_group and not self._is_member(conn, user.dn,
                                                                                    self.config.login_group):
                log.info("directory: %s is not in ldap.login_group; login refused", user.dn)
                return None
            return user

        user = self._with_service(find)
        if user is None:
            return None
        try:
            self._connect(user.dn, password).unbind()
        except DirectoryBindRefused:
            return None
        return user.dn

    async def verify(self, username: str, password: str) -> str | None:
        """The user's DN when `password` is theirs; None for an unknown user or a wrong password. Raises
        DirectoryError when the directory cannot answer."""
        if not password or not username:
            return None  # an empty password would be an anonymous bind, which "succeeds"
        dn = await self._run(lambda: self._verify(username, password))
        if dn is None:
            self.status.failed_logins += 1
        else:
            self.status.logins += 1
        return dn

    async def user(self, username: str) -> DirectoryUser | None:
        """The entry of `username` with its profile attributes; None when there is none."""
        return await self._run(lambda: self._with_service(lambda conn: self._user(conn, username)))

    def _groups(self, conn: ldap3.Connection) -> list[tuple[str, str]]:
        base = self.config.group_base or self.config.base
        found = self._search(conn, base, self.config.group_filter, ("cn",), size_limit=GROUP_LIST_LIMIT)
        return sorted(((dn, _text(raw.get("cn")) or dn) for dn, raw in found), key=lambda g: g[1].lower())

    async def groups(self) -> list[tuple[str, str]]:
        """(DN, name) of the directory's groups under group_base, by name: what a shared group can follow."""
        return await self._run(lambda: self._with_service(self._groups))

    async def members(self, group_dn: str) -> dict[str, Member]:
        """Username -> entry and name of every user of a group, nested groups included."""
        return await self._run(lambda: self._with_service(lambda conn: self._members(conn, group_dn)))

    def _check(self, username: str) -> CheckResult:
        steps: list[str] = []
        try:
            conn = self._service_connection()
        except DirectoryError as exc:
            return CheckResult(False, (), str(exc))
        try:
            tls = "LDAPS" if self.secure else ("StartTLS" if self.config.starttls else "no TLS")
            steps.append(f"connected to {self.config.uri} ({tls})")
            steps.append(f"bound as {self.config.bind_dn or 'anonymous'}")
            found = self._search(conn, self.config.base, self._user_filter(None), ("objectClass",),
                                 size_limit=COUNT_LIMIT)
            steps.append(f"{len(found)}{'+' if len(found) >= COUNT_LIMIT else ''} users under {self.config.base}")
            user = None
            if username:
                user = self._user(conn, username)
                if user is None:
                    return CheckResult(False, tuple(steps), f"no user {username!r} found with "
                                       f"{self._user_filter(username)} under {self.config.base}", len(found))
                steps.append(f"found {username}: {user.dn}")
            return CheckResult(True, tuple(steps), users_found=len(found), user=user)
        except DirectoryError as exc:
            return CheckResult(False, tuple(steps), str(exc))
        except ldap_errors.LDAPException as exc:
            return CheckResult(False, tuple(steps), str(self._communication_error(exc)))
        finally:
            _unbind(conn)

    async def check(self, username: str = "") -> CheckResult:
        """Connect, bind, count users and find `username`: the wizard's and console's live test."""
        result = await asyncio.to_thread(self._check, username)
        now = self.clock()
        self.status.checked_at = now
        self.status.reachable = result.ok or bool(result.steps)
        if result.ok:
            self.status.users_found = result.users_found
        else:
            self.status.last_error, self.status.last_error_at = result.error, now
        return result


def describe(result: CheckResult) -> str:
    """One paragraph for a log line or the CLI."""
    text = "; ".join(result.steps)
    return f"{text}; FAILED: {result.error}" if result.error else text


__all__ = ["CheckResult", "DirectoryBindRefused", "DirectoryError", "DirectoryRequestFailed", "DirectoryStatus",
           "DirectoryTlsFailure", "DirectoryUnreachable", "DirectoryUser", "LdapDirectory", "Member", "describe"]
