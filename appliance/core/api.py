"""The module API: `Module` and `ModuleContext`, the only surface feature modules see."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from lxml import etree

from appliance.config.options import option, section
from appliance.config.spec import (
    DOMAIN,
    LABEL,
    NAME,
    OPTIONAL_DOMAIN,
    SECRET,
    SERVICE_URI,
    URI,
    URL_BASE,
    WEB_URL,
    Bool,
    Choice,
    Duration,
    Int,
    ListOf,
    Size,
    Text,
)
from appliance.core.accounts import AccountExists, AccountNotFound, WeakPassword
from appliance.core.changes import ChangeListener, SharedChanges
from appliance.core.events import NORMAL, Event, HookBus
from appliance.core.iq import IqHandler, IqKey, IqRequest, IqTable, PendingIqs, Scope
from appliance.core.session_options import CsiOptions, Sasl2Options, StreamManagementOptions
from appliance.core.sessions import Session
from appliance.xmpp.jid import JID

if TYPE_CHECKING:
    from appliance.config.model import Config, HostConfig
    from appliance.core.accounts import AccountService
    from appliance.core.router import Router
    from appliance.core.sessions import SessionDirectory
    from appliance.core.stores import Stores
    from appliance.util.tasks import TaskSupervisor

__all__ = [
    "DOMAIN",
    "LABEL",
    "NAME",
    "OPTIONAL_DOMAIN",
    "SECRET",
    "SERVICE_URI",
    "URI",
    "URL_BASE",
    "WEB_URL",
    "AccountDesk",
    "AccountExists",
    "AccountNotFound",
    "Bool",
    "BuiltinTurn",
    "Choice",
    "CsiOptions",
    "Directory",
    "DirectoryMember",
    "DirectoryProfile",
    "Duration",
    "Host",
    "Int",
    "InvitationDesk",
    "IqRequest",
    "IssuedInvitation",
    "ListOf",
    "Module",
    "ModuleContext",
    "NoOptions",
    "Sasl2Options",
    "Scope",
    "Session",
    "Size",
    "StreamFeature",
    "StreamManagementOptions",
    "Text",
    "WeakPassword",
    "Xep",
    "option",
    "section",
]

S = TypeVar("S")
OptionsT = TypeVar("OptionsT")
P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class BuiltinTurn:
    """The STUN/TURN server running in this process ([turn]), published by the composition root for
    external service discovery (XEP-0215) to announce with credentials made from its secret."""

    secret: str
    port: int
    tls_port: int = 0  # 0: no TURN over TLS
    host: str = ""  # "": the XMPP host's own name


class AccountDesk(Protocol):
    """Account administration as the console does it (audited, sessions of a deleted account closed,
    server.admins kept in step). The composition root publishes it to every host (`ctx.optional`);
    `actor` is the administrator's bare JID, `account` "alice@host". Each raises ValueError with a
    message for the administrator when the request cannot be done."""

    async def create(self, actor: str, account: str, password: str) -> str: ...

    async def reset_password(self, actor: str, account: str, password: str) -> None: ...

    async def delete(self, actor: str, account: str) -> None: ...

    async def set_disabled(self, actor: str, account: str, disabled: bool) -> None: ...

    async def disconnect(self, actor: str, account: str) -> int:
        """End every session of the account; returns how many there were."""
        ...


class DirectoryProfile(Protocol):
    """A directory user's entry as modules see it (appliance/directory's DirectoryUser)."""

    @property
    def username(self) -> str: ...
    @property
    def dn(self) -> str: ...
    @property
    def full_name(self) -> str: ...
    @property
    def given_name(self) -> str: ...
    @property
    def family_name(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def phone(self) -> str: ...
    @property
    def photo(self) -> bytes: ...
    @property
    def photo_type(self) -> str: ...


class DirectoryMember(Protocol):
    """A user found in a directory group: their entry and the name to show for them ("" if none)."""

    @property
    def dn(self) -> str: ...
    @property
    def name(self) -> str: ...


class Directory(Protocol):
    """The company directory (LDAP) as modules see it; the composition root publishes it to every host
    (`ctx.optional(Directory)`) when [ldap] is enabled. Requests raise ConnectionError when the directory
    cannot answer."""

    @property
    def vcards(self) -> bool: ...
    @property
    def sync_interval(self) -> float: ...

    def serves(self, host: str) -> bool: ...

    async def user(self, username: str) -> DirectoryProfile | None: ...

    async def members(self, group_dn: str) -> dict[str, DirectoryMember]:
        """Username -> entry and name of every user of a directory group, nested groups included."""
        ...


@dataclass(frozen=True, slots=True)
class IssuedInvitation:
    """An invitation just made: what the inviter passes on (XEP-0401 §5.1) and when it expires."""

    uri: str  # xmpp:...;preauth=TOKEN
    landing_url: str
    expires: float


class InvitationDesk(Protocol):
    """Invitations as modules use them (services.invitations.Invitations; the composition root publishes
    it to every host). `accept` raises AccountExists when the name is taken, ValueError with a message
    for the user for any other refusal."""

    @property
    def enabled(self) -> bool: ...

    async def valid(self, token: str, host: str) -> bool:
        """Whether `token` is a valid invitation to create an account on `host` now."""
        ...

    async def accept(self, token: str, username: str, password: str, *, host: str | None = None) -> str: ...

    async def issue(self, actor: str, host: str, *, contact: bool, username: str = "") -> IssuedInvitation:
        """Make a single-use invitation on `host` by `actor`; with `contact`, the invitee and the actor
        become mutual contacts."""
        ...


@dataclass(frozen=True, slots=True)
class Xep:
    """A specification a module implements, for the compliance table."""

    number: int
    version: str
    status: str = "complete"
    note: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    category: str
    type: str
    name: str = ""


StreamFeature = Callable[["Session"], etree._Element | None]
PreAuthIqHandler = Callable[[etree._Element, Any], Awaitable[etree._Element | None]]


@dataclass(slots=True)
class Host:
    """One virtual host: its config, hooks, disco data and the services its modules publish."""

    name: str
    config: HostConfig
    hooks: HookBus = field(default_factory=HookBus)
    features: set[str] = field(default_factory=set)  # disco#info of the server
    account_features: set[str] = field(default_factory=set)  # disco#info of an account's bare JID
    identities: list[Identity] = field(default_factory=list)
    account_identities: list[Identity] = field(default_factory=list)  # beside account/registered
    stream_features: list[StreamFeature] = field(default_factory=list)  # offered after binding is possible
    services: dict[type, Any] = field(default_factory=dict)
    extensions: list[Callable[[], etree._Element | None]] = field(default_factory=list)  # XEP-0128 forms
    preauth_iq: dict[str, PreAuthIqHandler] = field(default_factory=dict)  # IQs allowed before login
    modules: list[Module] = field(default_factory=list)
    components: set[str] = field(default_factory=set)  # connected external components listed in disco#items

    @property
    def jid(self) -> JID:
        return JID.parse(self.name)


@dataclass(frozen=True, slots=True)
class NoOptions:
    """The options of a module that has none."""


class Module:
    """Base class of a feature module. Subclasses set `name`, `implements` and write `setup`.

    A module with options sets `options` to its frozen dataclass of `option()` fields (declared beside
    it); the loader validates [modules.<name>] against it, the reference documents it, and `setup`
    receives a `ModuleContext[ThoseOptions]` whose `options` is this host's instance.
    """

    name: ClassVar[str] = ""
    implements: ClassVar[tuple[Xep, ...]] = ()
    depends: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[type | None] = None

    def setup(self, ctx: ModuleContext[Any]) -> None:
        """Register handlers, hooks and features through `ctx`."""

    async def start(self) -> None:
        """Called once every module of the host is set up."""

    async def stop(self) -> None:
        """Called at shutdown or unload, before registrations are undone."""


class ModuleContext(Generic[OptionsT]):
    """What a module may touch; every registration is recorded so `undo()` removes it.

    Generic over the module's options type: `ModuleContext[OfflineOptions].options` is an OfflineOptions.
    """

    def __init__(
        self,
        module: Module,
        host: Host,
        *,
        config: Config,
        iq_table: IqTable,
        pending: PendingIqs,
        router: Router,
        sessions: SessionDirectory,
        stores: Stores,
        accounts: AccountService,
        tasks: TaskSupervisor,
        changes: SharedChanges | None = None,
    ) -> None:
        self.module = module
        self._host = host
        self.config = config
        self._iq_table = iq_table
        self._pending = pending
        self.router = router
        self.sessions = sessions
        self._stores = stores
        self.accounts = accounts
        self._tasks = tasks
        self._changes = changes if changes is not None else SharedChanges()
        self._undo: list[Callable[[], None]] = []
        self.log = logging.getLogger(f"appliance.modules.{module.name}")

    # -- identity ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host.name

    @property
    def host_jid(self) -> JID:
        return self._host.jid

    @property
    def options(self) -> OptionsT:
        """This module's options for this host (its `options` dataclass, as configured)."""
        # The class attribute: a module may keep its options instance under the same name (self.options).
        return self._host.config.modules.of(type(self.module).options or NoOptions)  # type: ignore[return-value]

    def other_options(self, cls: type[S]) -> S:
        """Another module's options on this host (its defaults when that module is not configured)."""
        return self._host.config.modules.of(cls)

    def store(self, kind: type[S]) -> S:
        """The store implementing `kind`, a Protocol of storage/api.py: `ctx.store(RosterStore)`."""
        return self._stores.get(kind)

    def is_local(self, domain: str) -> bool:
        return self.router.is_local(domain)

    def is_admin(self, jid: JID) -> bool:
        return str(jid.bare()) in self.config.server.admins

    @staticmethod
    def now() -> float:
        return time.time()

    # -- registration -----------------------------------------------------------------------

    def iq(
        self,
        type_: str,
        tag: str,
        handler: IqHandler,
        *,
        scope: Scope = Scope.SERVER,
        feature: str | None = "",
        any_account: bool = False,
    ) -> None:
        """Handle IQs of `type_` ("get"/"set") whose payload is `tag` ({ns}local). Advertises the
        namespace as a disco feature unless `feature` is None (or another string to advertise).
        An ACCOUNT handler with `any_account` also gets requests for bare JIDs that have no account
        (otherwise the router answers those with service-unavailable)."""
        key = IqKey(self.host, scope, type_, tag)
        self._undo.append(self._iq_table.add(key, self.module.name, handler, any_account=any_account))
        if feature is not None:
            self.feature(feature or tag[1:].partition("}")[0], scope=scope)

    def hook(self, event: Event[P], handler: Callable[[P], Any] | Callable[[P, Any], Any],
             priority: int = NORMAL) -> None:
        """Handle `event` (a fold event's handler also gets the accumulator and returns the new one)."""
        self._undo.append(self._host.hooks.add(event, handler, priority))

    def feature(self, var: str, *, scope: Scope = Scope.SERVER) -> None:
        target = self._host.features if scope is Scope.SERVER else self._host.account_features
        if var not in target:
            target.add(var)
            self._undo.append(lambda: target.discard(var))

    def identity(self, category: str, type_: str, name: str = "", *, scope: Scope = Scope.SERVER) -> None:
        target = self._host.identities if scope is Scope.SERVER else self._host.account_identities
        ident = Identity(category, type_, name)
        target.append(ident)
        self._undo.append(lambda: target.remove(ident))

    def stream_feature(self, provider: StreamFeature) -> None:
        self._host.stream_features.append(provider)
        self._undo.append(lambda: self._host.stream_features.remove(provider))

    def preauth_iq(self, tag: str, handler: PreAuthIqHandler) -> None:
        """Answer IQ get/set with payload `tag` on streams that have not authenticated (XEP-0077)."""
        self._host.preauth_iq[tag] = handler
        self._undo.append(lambda: self._host.preauth_iq.pop(tag, None))

    def serve_domain(self, domain: str, handler: Callable[[Any], Awaitable[None]]) -> None:
        """Serve a service domain of this host (e.g. f"conference.{ctx.host}") in this process: `handler`
        gets a StanzaEvent for every stanza addressed to it or a JID under it; a StanzaError it raises
        is bounced to the sender. One module per domain; a clash with a host or another module fails."""
        self._undo.append(self.router.add_service(domain, handler))

    def disco_extension(self, provider: Callable[[], etree._Element | None]) -> None:
        self._host.extensions.append(provider)
        self._undo.append(lambda: self._host.extensions.remove(provider))

    def provide(self, key: type[S], service: S) -> None:
        self._host.services[key] = service
        self._undo.append(lambda: self._host.services.pop(key, None))

    def require(self, key: type[S]) -> S:
        try:
            return self._host.services[key]
        except KeyError:
            raise RuntimeError(f"module {self.module.name} needs {key.__name__}, which no module provides") from None

    def optional(self, key: type[S]) -> S | None:
        return self._host.services.get(key)

    # -- host data for disco ----------------------------------------------------------------

    @property
    def components(self) -> set[str]:
        """Domains of the external components (XEP-0114) connected and listed on this host."""
        return self._host.components

    @property
    def features(self) -> set[str]:
        return self._host.features

    @property
    def account_features(self) -> set[str]:
        return self._host.account_features

    @property
    def identities(self) -> list[Identity]:
        return self._host.identities

    @property
    def account_identities(self) -> list[Identity]:
        return self._host.account_identities

    @property
    def extensions(self) -> list[Callable[[], etree._Element | None]]:
        return self._host.extensions

    # -- acting -----------------------------------------------------------------------------

    async def route(self, stanza: etree._Element) -> None:
        """Send a stanza the server originates (its 'from' must be set)."""
        await self.router.route(stanza, origin=None)

    async def fire(self, event: Event[P], payload: P) -> bool:
        if not isinstance(payload, event.payload):
            raise TypeError(f"{event} carries {event.payload.__name__}, not {type(payload).__name__}")
        return await self._host.hooks.fire(event, payload)

    async def send_iq(self, stanza: etree._Element, timeout: float = 30.0) -> etree._Element:
        """Send an IQ get/set and wait for its result or error stanza."""
        if not stanza.get("id"):
            stanza.set("id", self._pending.new_id())
        future = self._pending.expect(stanza.get("id", ""))
        await self.route(stanza)
        async with asyncio.timeout(timeout):
            return await future

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.spawn(coro, f"{self.module.name}:{name}")

    def on_account_change(self, watcher: Callable[[str], Awaitable[None]]) -> None:
        """Call `watcher(host)` after an account of any host is created or deleted."""
        self._undo.append(self.accounts.watch(watcher))

    def on_shared_change(self, topic: str, listener: ChangeListener) -> None:
        """Call `listener(key, data)` when another node of a cluster announces a change to this host's shared
        data under `topic`; key None: changes may have been missed, drop everything cached."""
        self._undo.append(self._changes.listen(f"{self.host}:{topic}", listener))

    async def shared_changed(self, topic: str, key: str, data: bytes = b"") -> None:
        """Tell the other nodes of a cluster that this host's `key` under `topic` changed (once it is stored),
        so they drop what they cached of it; nothing on a single server."""
        await self._changes.announce(f"{self.host}:{topic}", key, data)

    def every(self, seconds: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        """Run `job` every `seconds` until the module stops."""
        self._undo.append(self._tasks.every(seconds, job, f"{self.module.name}:{name}"))

    def undo(self) -> None:
        while self._undo:
            try:
                self._undo.pop()()
            except Exception:
                self.log.exception("undoing a registration failed")
