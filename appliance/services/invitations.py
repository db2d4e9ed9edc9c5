"""Invitations (XEP-0401, XEP-0379, XEP-0445): links and preauth tokens that create accounts.

Made by administrators (console, API, CLI) and, when the administrator allows it, by users from their
client (the XEP-0401 ad-hoc commands). Redeemed on the landing page's form or by in-band registration
with the token (what Conversations does with an `xmpp:...;preauth=` link). An invitation may be used
once or up to a limit, until it expires; each use is claimed in one database statement before the
account is made, so concurrent redemptions never exceed the limit. The invitee becomes a mutual contact
of the inviter when the invitation names one, in the invitation's roster groups, and joins those of
the invitation's groups that are shared groups of the host.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from yarl import URL

from appliance.config.model import Config
from appliance.core.accounts import AccountExists, AccountService, WeakPassword
from appliance.core.api import IssuedInvitation
from appliance.services.accounts import WEAK_PASSWORD, AccountAdmin
from appliance.services.errors import NameTaken, NotFound, ServiceError, audit
from appliance.services.shared_groups import SharedGroupDesk
from appliance.storage.api import Invitation, InvitationStore, RosterItem, RosterStore
from appliance.storage.tokens import Invitation as LegacyInvitation
from appliance.util.i18n import _
from appliance.xmpp.jid import JID, JIDError

TOKEN_ALPHABET = string.ascii_letters + string.digits  # XEP-0401: an alphanumeric preauth token
TOKEN_LENGTH = 32  # about 190 bits
MAX_USES = 1000
MIN_LIFETIME = 60.0
MAX_LIFETIME = 365 * 86400.0
MAX_GROUPS = 10


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class ContactList(Protocol):
    """Roster changes that reach the user's online clients as roster pushes (modules.roster.RosterService)."""

    async def put(self, user: JID, item: RosterItem) -> None: ...


class StoredContacts:
    """Roster changes straight into the store, for a server that is not running (nobody to push to)."""

    def __init__(self, store: RosterStore) -> None:
        self.store = store

    async def put(self, user: JID, item: RosterItem) -> None:
        await self.store.put(user.domain, user.local or "", item)


@dataclass(frozen=True, slots=True)
class InvitationTerms:
    """What to make: on which host, how often and how long usable, for which contact and groups, and
    the one account name it may create ("" lets the invitee choose)."""

    host: str = ""
    uses: int = 1
    lifetime: float | None = None  # None: console.invitation_lifetime
    contact: str = ""
    groups: tuple[str, ...] = ()
    username: str = ""


class Invitations:
    """The invitations of one installation; `config` returns the running configuration (it reloads)."""

    def __init__(self, store: InvitationStore, accounts: AccountService, account_admin: AccountAdmin,
                 config: Callable[[], Config], *, reserved: Callable[[str], bool] = lambda jid: False,
                 contacts: Callable[[str], ContactList | None] = lambda host: None,
                 roster: RosterStore | None = None, shared: SharedGroupDesk | None = None) -> None:
        self.store = store
        self.accounts = accounts
        self.account_admin = account_admin
        self.config = config
        self.reserved = reserved  # names in server.admins: never signed up for by anyone else
        self.contacts = contacts  # host -> its live roster service, None when not running
        self.roster = roster
        self.shared = shared  # the hosts' shared groups: chosen groups that exist there are joined

    @property
    def enabled(self) -> bool:
        return self.config().console.invitations

    async def adopt(self, legacy: Sequence[LegacyInvitation]) -> None:
        """Move the invitations older versions kept in the token file into the store (their links work on)."""
        for old in legacy:
            used_by = (old.used_by,) if old.used_by else ()
            await self.store.create(Invitation(old.id, old.digest, old.host, old.creator, old.expires, old.created,
                                               uses=len(used_by), used_by=()))
        if legacy:
            audit.info("moved %d invitation(s) from the token file into the database", len(legacy))

    # -- making them -------------------------------------------------------------------------------

    async def create(self, actor: str, host: str | None = None, *,
                     terms: InvitationTerms | None = None) -> tuple[str, Invitation]:
        """A new invitation; the token is returned once (only its hash is kept)."""
        if not self.enabled:
            raise ServiceError(_("Invitations are turned off (console.invitations = false)."))
        terms = terms or InvitationTerms()
        host = host or terms.host or self.account_admin.default_host()
        if host not in self.account_admin.hosts:
            raise ServiceError(_("%(host)s is not a domain of this server.", host=host))
        lifetime = self.config().console.invitation_lifetime if terms.lifetime is None else terms.lifetime
        if not 1 <= terms.uses <= MAX_USES:
            raise ServiceError(_("An invitation can be used from 1 to %(n)s times.", n=MAX_USES))
        if not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
            raise ServiceError(_("An invitation lasts from a minute to a year."))
        groups = _groups(terms.groups)
        contact = await self._contact(terms.contact, host) if terms.contact else ""
        username = await self._free_name(terms.username, host) if terms.username else ""
        if username and terms.uses != 1:
            raise ServiceError(_("An invitation for a given name can be used only once."))
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
        now = time.time()
        record = Invitation(secrets.token_hex(4), digest(token), host, actor, now + lifetime, now, contact,
                            username, groups, terms.uses)
        await self.store.create(record)
        audit.info("%s: created invitation %s for %s (%d use(s), contact %s)", actor, record.id, host,
                   record.max_uses, contact or "none")
        return token, record

    async def _contact(self, text: str, host: str) -> str:
        try:
            jid = JID.parse(text.strip()).bare()
        except JIDError:
            raise ServiceError(_("%(text)s is not an account address like alice@%(host)s.", text=text,
                                 host=host)) from None
        if jid.domain != host or jid.local is None or not await self.accounts.exists(jid):
            raise ServiceError(_("%(jid)s is not an account on %(host)s.", jid=str(jid), host=host))
        return str(jid)

    async def _free_name(self, name: str, host: str) -> str:
        try:
            jid = JID.make(name.strip(), host)
        except JIDError:
            raise ServiceError(_("%(name)s is not a valid user name.", name=name)) from None
        if await self.accounts.exists(jid) or self.reserved(str(jid)) or \
                await self.store.reserved(host, jid.local or "", time.time()):
            raise NameTaken(_("%(jid)s is taken; choose another name.", jid=str(jid)))
        return jid.local or ""

    # -- what people are sent ------------------------------------------------------------------------

    def link(self, record: Invitation, token: str) -> str:
        """The landing page: its configured domain on the HTTPS port (plain HTTP when http.https is off).
        Never the Host header of the request that made it, which the client chooses."""
        http = self.config().http
        scheme, port = ("https", http.tls_port) if http.https else ("http", http.port)
        return str(URL.build(scheme=scheme, host=record.host, port=port, path=f"/invite/{token}"))

    @staticmethod
    def uri(record: Invitation, token: str) -> str:
        """The xmpp: URI apps open (XEP-0401 §5): a contact to add with an account to make (`ibr=y`),
        or an account to register, with the name it reserves."""
        if record.inviter:
            return f"xmpp:{_iri(record.inviter)}?roster;preauth={token};ibr=y"
        target = f"{record.username}@{record.host}" if record.username else record.host
        return f"xmpp:{_iri(target)}?register;preauth={token}"

    async def list(self) -> list[Invitation]:
        return await self.store.list()

    async def revoke(self, actor: str, invitation_id: str, *, owner: str | None = None) -> None:
        """Delete an invitation; with `owner`, only one that `owner` created (a user's own)."""
        if owner is not None and not any(i.id == invitation_id and i.creator == owner
                                         for i in await self.store.list()):
            raise NotFound(_("There is no invitation %(id)s.", id=invitation_id))
        if not await self.store.delete(invitation_id):
            raise NotFound(_("There is no invitation %(id)s.", id=invitation_id))
        audit.info("%s: revoked invitation %s", actor, invitation_id)

    async def issue(self, actor: str, host: str, *, contact: bool, username: str = "") -> IssuedInvitation:
        """A single-use invitation a user makes from a client (XEP-0401 ad-hoc commands)."""
        terms = InvitationTerms(host=host, contact=actor if contact else "", username=username)
        token, record = await self.create(actor, host, terms=terms)
        return IssuedInvitation(self.uri(record, token), self.link(record, token), record.expires)

    # -- redeeming them ------------------------------------------------------------------------------

    async def open(self, token: str, host: str | None = None) -> Invitation | None:
        """The still valid invitation behind a token (on `host`, when given), else None."""
        if not self.enabled or not token:
            return None
        record = await self.store.find(digest(token))
        if record is None or not record.valid(time.time()) or (host is not None and record.host != host):
            return None
        return record

    async def valid(self, token: str, host: str) -> bool:
        return await self.open(token, host) is not None

    async def accept(self, token: str, username: str, password: str, *, host: str | None = None) -> str:
        """Create the account the invitation behind `token` allows; returns its JID."""
        record = await self.open(token, host)
        if record is None:
            raise ServiceError(_("This invitation is not valid (any more)."))
        name = record.username or username.strip()
        if record.username and username.strip() and username.strip() != record.username:
            raise ServiceError(_("This invitation is for the name %(name)s.", name=record.username))
        jid = self.account_admin.jid_on_host(f"{name}@{record.host}")
        if self.reserved(str(jid)) or (not record.username and await self.store.reserved(
                record.host, jid.local or "", time.time())):
            raise NameTaken(_("%(jid)s is taken; choose another name.", jid=jid))
        # Claimed before the (slow) account creation: concurrent redemptions never exceed the limit.
        claimed = await self.store.claim(record.digest, str(jid), time.time())
        if claimed is None:
            raise ServiceError(_("This invitation is not valid (any more)."))
        created = False
        try:
            await self.accounts.create(jid, password)
            created = True
        except AccountExists:
            raise NameTaken(_("%(jid)s is taken; choose another name.", jid=jid)) from None
        except WeakPassword:
            raise ServiceError(_(WEAK_PASSWORD)) from None
        finally:
            if not created:
                await self.store.release(claimed.id, str(jid))
        await self._befriend(claimed, jid)
        await self._join(claimed, jid)
        audit.info("invitation %s (by %s) used to create %s", claimed.id, claimed.creator, jid)
        return str(jid)

    async def _befriend(self, record: Invitation, invitee: JID) -> None:
        """XEP-0401 §5.5: the inviter and the invitee see each other (subscription both), the inviter's
        clients told by a roster push; both entries in the invitation's groups."""
        if not record.inviter:
            return
        inviter = JID.parse(record.inviter)
        contacts = self.contacts(record.host)
        if contacts is None:
            if self.roster is None:
                return
            contacts = StoredContacts(self.roster)
        for user, contact in ((inviter, invitee), (invitee, inviter)):
            await contacts.put(user, RosterItem(str(contact), subscription="both", groups=record.groups))


    async def _join(self, record: Invitation, invitee: JID) -> None:
        """The invitation's groups that are shared groups of the host (whose members all see each other,
        like Snikket's circles): the invitee becomes a member. Other names only label the contact."""
        if self.shared is None or not record.groups:
            return
        try:
            existing = {group.name for group in await self.shared.groups(record.host)}
        except NotFound:  # shared groups are off on this host
            return
        for name in record.groups:
            if name in existing:
                await self.shared.add_member(f"invitation {record.id}", record.host, name, str(invitee))


def _groups(names: Sequence[str]) -> tuple[str, ...]:
    cleaned = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
    if len(cleaned) > MAX_GROUPS or any(len(name) > 100 for name in cleaned):
        raise ServiceError(_("At most %(n)s groups of up to 100 characters each.", n=MAX_GROUPS))
    return cleaned


def _iri(jid: str) -> str:
    """A JID inside an xmpp: URI (RFC 5122): reserved characters percent-encoded."""
    return quote(jid, safe="@.-_~!$&'()*+,=:")


__all__ = ["ContactList", "InvitationTerms", "Invitations", "StoredContacts", "digest"]
