"""Invitations made from a client (XEP-0401 ad-hoc commands): "Invite user" and "Create account".

Administrators may always run them; other users of the host only when `allow_users` is on (off by
default: each invitation is an account on the server). The links are made by the invitation service
the composition root publishes (the same as the console's, CLI's and the landing page's); accounts are
created when the invitee redeems them, by in-band registration (modules/register.py) or on the page.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from lxml import etree

from appliance.core.api import Bool, InvitationDesk, IssuedInvitation, Module, ModuleContext, Xep, option
from appliance.modules.adhoc import AdhocCommands, Command, CommandRun, Done
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.forms import Field
from appliance.xmpp.ns import NS_INVITE

INVITE = f"{NS_INVITE}#invite"
CREATE_ACCOUNT = f"{NS_INVITE}#create-account"
RESULT_FORM = f"{NS_INVITE}#invitation"


@dataclass(frozen=True, slots=True)
class InviteOptions:
    """Invitations from clients (XEP-0401)."""

    allow_users: bool = option(False, Bool(), "Let every user of the host make invitations from their client "
                                              "(XEP-0401 ad-hoc commands); administrators always may.")


class Invites(Module):
    """The XEP-0401 commands on the host's JID, for administrators and (when allowed) every user."""

    name = "invites"
    options = InviteOptions
    depends = ("adhoc",)
    implements = (
        Xep(401, "0.5.0", note="ad-hoc commands, landing page with QR code and app links, roster invitations"),
        Xep(379, "0.3.3", status="partial", note="the server's part: tokens in xmpp: URIs and the landing page, "
            "mutual subscription on sign-up; a token in an existing user's subscription request is left to the "
            "inviter's client"),
    )

    def setup(self, ctx: ModuleContext[InviteOptions]) -> None:
        self.ctx = ctx
        self.desk = ctx.optional(InvitationDesk)
        if self.desk is None:  # no service layer (a bare core in tests): nothing to offer
            return
        admin_only = not ctx.options.allow_users
        commands = ctx.require(AdhocCommands)
        commands.add(Command(INVITE, "Invite user", self.invite, admin_only=admin_only))
        commands.add(Command(CREATE_ACCOUNT, "Create account", self.create_account, (self.account_form,),
                             admin_only=admin_only))

    async def invite(self, run: CommandRun) -> Done:
        """XEP-0401 §5.1: a link that makes an account (or adds a contact) and befriends the requester."""
        return _done(await self._issue(run, contact=True))

    async def account_form(self, run: CommandRun) -> etree._Element:
        return forms.build(CREATE_ACCOUNT, (
            Field("username", "text-single", label="Username (optional: the invitee chooses)"),
            Field("roster-subscription", "boolean", ("1",), label="Add the new account to my contacts"),
        ), title="Create an account invitation")

    async def create_account(self, run: CommandRun) -> Done:
        """XEP-0401 §5.4: a link that makes one account, with a reserved name if given."""
        try:
            contact = forms.parse_bool(run.value("roster-subscription", required=False) or "0")
        except ValueError:
            raise StanzaError.bad_request("roster-subscription must be a boolean") from None
        return _done(await self._issue(run, contact=contact, username=run.value("username", required=False)))

    async def _issue(self, run: CommandRun, *, contact: bool, username: str = "") -> IssuedInvitation:
        assert self.desk is not None
        if run.requester.domain != self.ctx.host or run.requester.local is None:
            raise StanzaError.forbidden("Only users of this server may invite")
        try:
            return await self.desk.issue(run.actor, self.ctx.host, contact=contact, username=username)
        except ValueError as exc:  # invitations off, a name taken, ...
            raise StanzaError.not_allowed(str(exc)) from None


def _done(issued: IssuedInvitation) -> Done:
    expire = datetime.datetime.fromtimestamp(issued.expires, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    form = forms.build(RESULT_FORM, (
        Field("uri", "text-single", (issued.uri,)),
        Field("landing-url", "text-single", (issued.landing_url,)),
        Field("expire", "text-single", (expire,)),
    ), type_="result")
    return Done(form=form)


__all__ = ["CREATE_ACCOUNT", "INVITE", "InviteOptions", "Invites"]
