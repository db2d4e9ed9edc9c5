"""XEP-0054 vcard-temp: publish, retrieve your own and others' vCards, the errors."""

from __future__ import annotations

from tests.conformance.client import NS, connect, q, register_account, stanza_error
from tests.conformance.conftest import ServerInfo, xfail_on
from tests.conformance.contacts import assert_result

VCARD = f"<vCard xmlns='{NS['vcard']}'/>"


async def test_publish_then_retrieve_own_and_by_others(server: ServerInfo) -> None:
    # §3.1 (own vCard: no 'to'), §3.2 (update: IQ set, empty result) and §3.3 (another user's vCard,
    # to the bare JID, answered by the server).
    name = await register_account(server)
    async with connect(server, name) as owner:
        assert_result(await owner.iq(f"<iq type='set'><vCard xmlns='{NS['vcard']}'><FN>Jo Tester</FN>"
                                     "<NICKNAME>jo</NICKNAME></vCard></iq>"))
        own = assert_result(await owner.iq(f"<iq type='get'>{VCARD}</iq>"), "vcard:vCard")
        assert own is not None and own.findtext(q("vcard:FN")) == "Jo Tester"
    async with connect(server, "alice") as other:
        theirs = assert_result(await other.iq(f"<iq type='get' to='{server.jid(name)}'>{VCARD}</iq>"), "vcard:vCard")
    assert theirs is not None and theirs.findtext(q("vcard:NICKNAME")) == "jo"


async def test_no_vcard_is_empty_or_item_not_found(server: ServerInfo) -> None:
    # §3.1: if no vCard exists the server MUST return an error (SHOULD item-not-found) or an IQ result
    # with an empty <vCard/>.
    name = await register_account(server)
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='get' to='{server.jid(name)}'>{VCARD}</iq>")
    if reply.get("type") == "result":
        vcard = reply.find(q("vcard:vCard"))
        assert vcard is None or len(vcard) == 0
    else:
        assert stanza_error(reply)[1] in ("item-not-found", "service-unavailable")


@xfail_on("ejabberd", "prosody", reason="XEP-0054 §3.3: for a user that does not exist the server MUST return "
          "a stanza error; both peers answer an empty vCard")
async def test_vcard_of_missing_account(server: ServerInfo) -> None:
    # §3.3: "If no vCard exists or the user does not exist, the server MUST return a stanza error, which
    # SHOULD be either <service-unavailable/> or <item-not-found/>".
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='get' to='{server.jid('no-such-user-xyz')}'>{VCARD}</iq>")
    assert reply.get("type") == "error"
    assert stanza_error(reply)[1] in ("service-unavailable", "item-not-found")


@xfail_on("ejabberd", reason="XEP-0054 §3.2: only the owner publishes its vCard; ejabberd answers a set "
          "addressed to another account with a result")
async def test_cannot_set_someone_elses_vcard(server: ServerInfo) -> None:
    # §3.2: only the owner publishes its vCard; a set addressed to another account is refused.
    async with connect(server, "alice") as c:
        reply = await c.iq(f"<iq type='set' to='{server.jid('bob')}'><vCard xmlns='{NS['vcard']}'>"
                           "<FN>Mallory</FN></vCard></iq>")
    assert reply.get("type") == "error"
    assert stanza_error(reply)[1] in ("forbidden", "not-allowed", "service-unavailable", "not-authorized")
