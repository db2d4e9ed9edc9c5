"""Service administration (XEP-0133): the admin commands of ad-hoc clients (Gajim, Psi, Conversations).

Account changes go through the `AccountDesk` the composition root publishes, so an account made or
deleted here is audited and handled exactly as from the console. Only server.admins see or run them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from lxml import etree

from appliance.core.api import AccountDesk, Module, ModuleContext, Xep
from appliance.modules.adhoc import AdhocCommands, Command, CommandRun, Done
from appliance.modules.announce import Announcements
from appliance.storage.api import RosterStore
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.forms import Field
from appliance.xmpp.jid import JID, JIDError

NS_ADMIN = "http://jabber.org/protocol/admin"
LIST_SIZES = ("25", "50", "75", "100", "150", "200", "none")


def node(name: str) -> str:
    return f"{NS_ADMIN}#{name}"


def form(title: str, instructions: str, *fields: Field) -> Callable[[CommandRun], Awaitable[etree._Element]]:
    """A form step asking for `fields`."""

    async def build(_run: CommandRun) -> etree._Element:
        return forms.build(NS_ADMIN, fields, title=title, instructions=instructions)

    return build


def result(*fields: Field) -> etree._Element:
    return forms.build(NS_ADMIN, fields, type_="result")


def list_form(title: str) -> Callable[[CommandRun], Awaitable[etree._Element]]:
    """The first stage of the list commands: how many entries to report."""
    return form(title, "How many users to list at most",
                Field("max_items", "list-single", ("25",), label="Maximum number of items to report",
                      options=LIST_SIZES))


def max_items(run: CommandRun) -> int | None:
    """The submitted max_items (None: no limit); bad-request for a value not offered."""
    limit = run.value("max_items", required=False) or "25"
    if limit not in LIST_SIZES:
        raise StanzaError.bad_request(f"max_items must be one of {', '.join(LIST_SIZES)}")
    return None if limit == "none" else int(limit)


ACCOUNT = Field("accountjid", "jid-single", label="The Jabber ID of the account", required=True)
ACCOUNTS = Field("accountjids", "jid-multi", label="The Jabber IDs of the accounts", required=True)
PASSWORD = Field("password", "text-private", label="The password for this account", required=True)


class AdminCommands(Module):
    """add-user, delete-user, change-user-password, user-stats, the user counts and online list, and
    announce, on the server JID of each host."""

    name = "admin_commands"
    depends = ("adhoc", "announce")
    implements = (Xep(133, "1.3.0", status="partial",
                      note="users: add, delete, disable, re-enable, end sessions, password, stats, counts, lists; "
                           "announce; message of the day"),)

    def setup(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        commands = ctx.require(AdhocCommands)
        for command in self._commands():
            commands.add(command)

    def _commands(self) -> Iterable[Command]:
        yield Command(node("add-user"), "Add a user", self.add_user, (form(
            "Adding a user", "Fill out this form to add a user.", ACCOUNT, PASSWORD,
            Field("password-verify", "text-private", label="Retype password", required=True)),))
        yield Command(node("delete-user"), "Delete users", self.delete_users, (form(
            "Deleting users", "Fill out this form to delete users and everything stored for them.", ACCOUNTS),))
        yield Command(node("disable-user"), "Disable users", self.disable_users, (form(
            "Disabling users", "Fill out this form to disable users: they cannot log in until re-enabled.",
            ACCOUNTS),))
        yield Command(node("reenable-user"), "Re-enable users", self.reenable_users, (form(
            "Re-enabling users", "Fill out this form to re-enable users.", ACCOUNTS),))
        yield Command(node("end-user-session"), "End user sessions", self.end_sessions, (form(
            "Ending user sessions", "Fill out this form to disconnect every session of these users.", ACCOUNTS),))
        yield Command(node("change-user-password"), "Change a user's password", self.change_password, (form(
            "Changing a user password", "Fill out this form to change a user's password.", ACCOUNT, PASSWORD),))
        yield Command(node("user-stats"), "Get user statistics", self.user_stats, (form(
            "Getting user statistics", "Fill out this form to get a user's statistics.", ACCOUNT),))
        yield Command(node("get-registered-users-num"), "Get the number of registered users", self.registered_num)
        yield Command(node("get-disabled-users-num"), "Get the number of disabled users", self.disabled_num)
        yield Command(node("get-disabled-users-list"), "Get the list of disabled users", self.disabled_list)
        yield Command(node("get-online-users-num"), "Get the number of online users", self.online_num)
        yield Command(node("get-registered-users-list"), "Get the list of registered users",
                      self.registered_list, (list_form("Getting the list of registered users"),))
        yield Command(node("get-online-users-list"), "Get the list of online users", self.online_list,
                      (list_form("Getting the list of online users"),))
        yield Command(node("announce"), "Send an announcement to online users", self.announce, (form(
            "Making an announcement", "Fill out this form to send a message to every online user.",
            Field("announcement", "text-multi", label="Announcement", required=True)),))
        yield Command(node("set-motd"), "Set the message of the day", self.set_motd, (form(
            "Setting the message of the day", "Online users get it now, the others at their next login.",
            Field("motd", "text-multi", label="Message of the day", required=True)),))
        yield Command(node("edit-motd"), "Edit the message of the day", self.edit_motd, (self.motd_form,))
        yield Command(node("delete-motd"), "Delete the message of the day", self.delete_motd)

    # -- helpers ------------------------------------------------------------------------------------

    def _account(self, text: str) -> JID:
        """A bare account JID of this host; bad-request otherwise."""
        try:
            jid = JID.parse(text)
        except JIDError:
            raise StanzaError.bad_request(f"{text} is not a Jabber ID") from None
        if jid.local is None or jid.resource is not None or jid.domain != self.ctx.host:
            raise StanzaError.bad_request(f"{text} is not an account of {self.ctx.host}")
        return jid

    def desk(self) -> AccountDesk:
        desk = self.ctx.optional(AccountDesk)
        if desk is None:
            raise StanzaError.service_unavailable("Account administration is not available")
        return desk

    def online_users(self) -> dict[JID, list[JID]]:
        """Bare JID -> the full JIDs of its sessions, for everyone online on this host."""
        out: dict[JID, list[JID]] = {}
        for session in self.ctx.sessions.all():
            if session.jid.domain == self.ctx.host:
                out.setdefault(session.jid.bare(), []).append(session.jid)
        return out

    # -- accounts -----------------------------------------------------------------------------------

    async def add_user(self, run: CommandRun) -> Done:
        jid = self._account(run.value("accountjid"))
        password = run.value("password")
        if password != run.value("password-verify"):
            return Done("The two passwords differ.", "error")
        try:
            created = await self.desk().create(run.actor, str(jid), password)
        except ValueError as exc:
            return Done(str(exc), "error")
        return Done(f"{created} was created.")

    def _accounts(self, run: CommandRun) -> list[JID]:
        jids = [self._account(text) for text in run.values.get("accountjids", ()) if text.strip()]
        if not jids:
            run.value("accountjids")  # raises: the field is required
        return jids

    async def _each(self, jids: list[JID], change: Callable[[str], Awaitable[None]], done: str) -> Done:
        """Apply `change` to every account; one note with what failed, else `done` with the list."""
        failed = []
        for jid in jids:
            try:
                await change(str(jid))
            except ValueError as exc:
                failed.append(str(exc))
        if failed:
            return Done(" ".join(failed), "error")
        return Done(f"{done}: {', '.join(map(str, jids))}.")

    async def delete_users(self, run: CommandRun) -> Done:
        return await self._each(self._accounts(run), lambda jid: self.desk().delete(run.actor, jid), "Deleted")

    async def disable_users(self, run: CommandRun) -> Done:
        return await self._each(self._accounts(run), lambda jid: self.desk().set_disabled(run.actor, jid, True),
                                "Disabled")

    async def reenable_users(self, run: CommandRun) -> Done:
        return await self._each(self._accounts(run), lambda jid: self.desk().set_disabled(run.actor, jid, False),
                                "Re-enabled")

    async def end_sessions(self, run: CommandRun) -> Done:
        async def disconnect(jid: str) -> None:
            await self.desk().disconnect(run.actor, jid)

        return await self._each(self._accounts(run), disconnect, "Ended the sessions of")

    async def change_password(self, run: CommandRun) -> Done:
        jid = self._account(run.value("accountjid"))
        try:
            await self.desk().reset_password(run.actor, str(jid), run.value("password"))
        except ValueError as exc:
            return Done(str(exc), "error")
        return Done(f"The password of {jid} was changed.")

    async def user_stats(self, run: CommandRun) -> Done:
        jid = self._account(run.value("accountjid"))
        if not await self.ctx.accounts.exists(jid):
            return Done(f"{jid} does not exist.", "error")
        assert jid.local is not None
        roster = await self.ctx.store(RosterStore).count(jid.domain, jid.local)
        resources = tuple(str(s.jid) for s in self.ctx.sessions.resources(jid))
        return Done(form=result(
            Field("accountjid", "jid-single", (str(jid),), label="The Jabber ID of the user"),
            Field("rostersize", "text-single", (str(roster),), label="Roster size"),
            Field("onlineresources", "text-multi", resources, label="Online resources"),
        ))

    # -- who is here ----------------------------------------------------------------------------------

    async def registered_num(self, _run: CommandRun) -> Done:
        count = await self.ctx.accounts.count(self.ctx.host)
        return Done(form=result(Field("registeredusersnum", "text-single", (str(count),),
                                      label="The number of registered users")))

    async def disabled_num(self, _run: CommandRun) -> Done:
        count = len(await self.ctx.accounts.disabled(self.ctx.host))
        return Done(form=result(Field("disabledusersnum", "text-single", (str(count),),
                                      label="The number of disabled users")))

    async def disabled_list(self, _run: CommandRun) -> Done:
        users = tuple(f"{u}@{self.ctx.host}" for u in await self.ctx.accounts.disabled(self.ctx.host))
        return Done(form=result(Field("disableduserjids", "jid-multi", users, label="The disabled users")))

    async def online_num(self, _run: CommandRun) -> Done:
        return Done(form=result(Field("onlineusersnum", "text-single", (str(len(self.online_users())),),
                                      label="The number of online users")))

    async def online_list(self, run: CommandRun) -> Done:
        users = sorted(map(str, self.online_users()))[: max_items(run)]
        return Done(form=result(Field("onlineuserjids", "jid-multi", tuple(users), label="The online users")))

    async def registered_list(self, run: CommandRun) -> Done:
        host = self.ctx.host
        limit = max_items(run)
        if limit is None:
            limit = await self.ctx.accounts.count(host)
        users = await self.ctx.accounts.list(host, limit=limit)
        return Done(form=result(Field("registereduserjids", "jid-multi", tuple(f"{u}@{host}" for u in users),
                                      label="The registered users")))

    # -- announcements ---------------------------------------------------------------------------------

    def _text(self, run: CommandRun, var: str) -> str:
        """A text-multi field's lines as one text; bad-request when empty."""
        text = "\n".join(run.values.get(var, ())).strip()
        if not text:
            run.value(var)  # raises: the field is required
        return text

    async def announce(self, run: CommandRun) -> Done:
        count = await self.ctx.require(Announcements).announce(self._text(run, "announcement"))
        return Done(f"The announcement was sent to {count} online sessions.")

    async def set_motd(self, run: CommandRun) -> Done:
        count = await self.ctx.require(Announcements).set_motd(self._text(run, "motd"), send_now=True)
        return Done(f"The message of the day was set and sent to {count} online sessions.")

    async def motd_form(self, _run: CommandRun) -> etree._Element:
        current = await self.ctx.require(Announcements).motd()
        return forms.build(NS_ADMIN, (Field("motd", "text-multi", tuple(current.text.split("\n")) if current else (),
                                            label="Message of the day", required=True),),
                           title="Editing the message of the day",
                           instructions="Users get the changed message at their next login.")

    async def edit_motd(self, run: CommandRun) -> Done:
        await self.ctx.require(Announcements).set_motd(self._text(run, "motd"), send_now=False)
        return Done("The message of the day was changed; users get it at their next login.")

    async def delete_motd(self, _run: CommandRun) -> Done:
        if await self.ctx.require(Announcements).delete_motd():
            return Done("The message of the day was deleted.")
        return Done("There was no message of the day.", "warn")


__all__ = ["NS_ADMIN", "AdminCommands"]
