"""Ad-hoc commands (XEP-0050) on the server's JID: the command list in disco, multi-stage sessions.

Other modules add commands to the `AdhocCommands` this module provides (XEP-0133 in admin_commands.py).
A command is its forms, shown one per stage, then `complete` with everything submitted; a session
belongs to the full JID that started it and ends on completion, cancel or after `session_timeout`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from lxml import etree

from appliance.core.api import Duration, Int, IqRequest, Module, ModuleContext, Scope, Xep, option
from appliance.modules._util import element
from appliance.modules.disco import DiscoNodes
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.jid import JID
from appliance.xmpp.ns import NS_COMMANDS, NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS

COMMAND = f"{{{NS_COMMANDS}}}command"
ACTIONS = ("execute", "next", "prev", "complete", "cancel")


@dataclass(frozen=True, slots=True)
class AdhocOptions:
    """Ad-hoc commands (XEP-0050)."""

    session_timeout: float = option(600.0, Duration(30, 86400.0),
                                    "How long a started command waits for its next step.")
    max_sessions: int = option(10, Int(1, 1000), "Commands one account may have open at once; the oldest ends.")


@dataclass(slots=True)
class CommandRun:
    """One execution of a command: who runs it, the stage it is at and the values submitted so far."""

    sessionid: str
    requester: JID  # the full JID that started it
    command: Command
    expires: float
    stage: int = 0
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return str(self.requester.bare())

    def value(self, var: str, *, required: bool = True) -> str:
        """The first value of field `var`, stripped; bad-request (bad-payload) when required and empty."""
        found = next(iter(self.values.get(var, ())), "").strip()
        if required and not found:
            raise StanzaError.bad_request(f"The field '{var}' is required", app_element=condition("bad-payload"))
        return found


@dataclass(frozen=True, slots=True)
class Done:
    """How a command ended: a note for the user (info, warn or error) and/or a result form."""

    note: str = ""
    note_type: str = "info"
    form: etree._Element | None = None


FormStep = Callable[[CommandRun], Awaitable[etree._Element]]


@dataclass(frozen=True, slots=True)
class Command:
    """An ad-hoc command: its node and name, the forms of its stages (none: it runs at once), what it
    does with the submitted values, and whether only server administrators may see and run it."""

    node: str
    name: str
    complete: Callable[[CommandRun], Awaitable[Done]]
    forms: tuple[FormStep, ...] = ()
    admin_only: bool = True


class AdhocCommands:
    """The commands of one host, by node (`ctx.require(AdhocCommands).add(command)`)."""

    __slots__ = ("_by_node",)

    def __init__(self) -> None:
        self._by_node: dict[str, Command] = {}

    def add(self, command: Command) -> None:
        if command.node in self._by_node:
            raise RuntimeError(f"two ad-hoc commands use the node {command.node}")
        self._by_node[command.node] = command

    def get(self, node: str) -> Command | None:
        return self._by_node.get(node)

    def __iter__(self) -> Iterator[Command]:
        return iter(list(self._by_node.values()))


def condition(name: str) -> etree._Element:
    """An XEP-0050 application error condition (<bad-sessionid/>, <bad-action/> …)."""
    return etree.Element(f"{{{NS_COMMANDS}}}{name}", nsmap={None: NS_COMMANDS})


class Adhoc(Module):
    """Lists and runs the commands other modules add, for the requesters each command allows."""

    name = "adhoc"
    options = AdhocOptions
    depends = ("disco",)
    implements = (Xep(50, "1.3.0"),)

    def setup(self, ctx: ModuleContext[AdhocOptions]) -> None:
        self.ctx = ctx
        self.commands = AdhocCommands()
        self.runs: dict[str, CommandRun] = {}
        ctx.provide(AdhocCommands, self.commands)
        ctx.require(DiscoNodes).append(self)
        ctx.iq("set", COMMAND, self.on_command, scope=Scope.SERVER)

    async def stop(self) -> None:
        self.runs.clear()

    # -- discovery (XEP-0050 §2) ------------------------------------------------------------------

    def owns(self, node: str) -> bool:
        return node == NS_COMMANDS or self.commands.get(node) is not None

    def _allowed(self, command: Command, requester: JID) -> bool:
        return not command.admin_only or self.ctx.is_admin(requester)

    async def items(self, request: IqRequest, query: etree._Element) -> None:
        if request.payload.get("node") != NS_COMMANDS:
            return  # a command node has no items
        for command in self.commands:
            if self._allowed(command, request.from_jid):
                etree.SubElement(query, f"{{{NS_DISCO_ITEMS}}}item", jid=self.ctx.host, node=command.node,
                                 name=command.name)

    async def info(self, request: IqRequest, query: etree._Element) -> None:
        node = request.payload.get("node", "")
        command = self.commands.get(node)
        if command is None:
            etree.SubElement(query, f"{{{NS_DISCO_INFO}}}identity", category="automation", type="command-list")
            return
        if not self._allowed(command, request.from_jid):
            raise StanzaError.forbidden()
        etree.SubElement(query, f"{{{NS_DISCO_INFO}}}identity", category="automation", type="command-node",
                         name=command.name)
        for var in (NS_COMMANDS, NS_DATA):
            etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=var)

    # -- execution (XEP-0050 §3, §4) --------------------------------------------------------------

    async def on_command(self, request: IqRequest) -> etree._Element:
        payload = request.payload
        action = payload.get("action") or "execute"
        if action not in ACTIONS:
            raise StanzaError.bad_request(f"Unknown action '{action}'", app_element=condition("malformed-action"))
        command = self.commands.get(payload.get("node", ""))
        if command is None:
            raise StanzaError.item_not_found("No such command")
        if not self._allowed(command, request.from_jid):
            raise StanzaError.forbidden("Only administrators of this server may run this command")
        self._expire()
        sessionid = payload.get("sessionid")
        if sessionid is None:
            if action != "execute":
                raise StanzaError.bad_request("No command session to continue", app_element=condition("bad-sessionid"))
            return await self._start(command, request.from_jid)
        run = self.runs.get(sessionid)
        if run is None or run.requester != request.from_jid or run.command is not command:
            raise StanzaError.bad_request("Unknown or expired command session", app_element=condition("bad-sessionid"))
        run.expires = self.ctx.now() + self.ctx.options.session_timeout
        if action == "cancel":
            del self.runs[sessionid]
            return _answer(run, "canceled")
        if action == "prev":
            if run.stage == 0:
                raise StanzaError.bad_request("This is the first stage", app_element=condition("bad-action"))
            run.stage -= 1
            return await self._show(run)
        last = run.stage == len(command.forms) - 1
        if (action == "next" and last) or (action == "complete" and not last):
            raise StanzaError.bad_request(f"'{action}' is not offered here", app_element=condition("bad-action"))
        submitted = payload.find(forms.X)
        if submitted is not None:
            run.values.update(forms.values(submitted))
        if not last:
            run.stage += 1
            return await self._show(run)
        return await self._finish(run)

    async def _start(self, command: Command, requester: JID) -> etree._Element:
        run = CommandRun(secrets.token_urlsafe(12), requester, command,
                         self.ctx.now() + self.ctx.options.session_timeout)
        if not command.forms:
            return await self._finish(run, keep=False)
        mine = [r for r in self.runs.values() if r.requester.bare() == requester.bare()]
        for old in sorted(mine, key=lambda r: r.expires)[: max(0, len(mine) - self.ctx.options.max_sessions + 1)]:
            self.runs.pop(old.sessionid, None)
        self.runs[run.sessionid] = run
        return await self._show(run)

    async def _show(self, run: CommandRun) -> etree._Element:
        answer = _answer(run, "executing")
        last = run.stage == len(run.command.forms) - 1
        actions = etree.SubElement(answer, f"{{{NS_COMMANDS}}}actions", execute="complete" if last else "next")
        if run.stage > 0:
            etree.SubElement(actions, f"{{{NS_COMMANDS}}}prev")
        etree.SubElement(actions, f"{{{NS_COMMANDS}}}{'complete' if last else 'next'}")
        answer.append(await run.command.forms[run.stage](run))
        return answer

    async def _finish(self, run: CommandRun, *, keep: bool = True) -> etree._Element:
        done = await run.command.complete(run)  # a StanzaError leaves the session open to correct the form
        if keep:
            self.runs.pop(run.sessionid, None)
        answer = _answer(run, "completed")
        if done.note:
            etree.SubElement(answer, f"{{{NS_COMMANDS}}}note", type=done.note_type).text = done.note
        if done.form is not None:
            answer.append(done.form)
        return answer

    def _expire(self) -> None:
        now = self.ctx.now()
        for sessionid in [s for s, run in self.runs.items() if run.expires < now]:
            del self.runs[sessionid]


def _answer(run: CommandRun, status: str) -> etree._Element:
    answer = element(NS_COMMANDS, "command")
    answer.set("node", run.command.node)
    answer.set("sessionid", run.sessionid)
    answer.set("status", status)
    return answer


__all__ = ["AdhocCommands", "AdhocOptions", "Command", "CommandRun", "Done", "condition"]
