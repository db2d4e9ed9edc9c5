"""The XEP-0227 reader and writer (xmpp/pie.py), sans IO: what the peers write reads back, and what
Parlour writes reads back the same."""

from __future__ import annotations

import base64
import hashlib

import pytest

from appliance.xmpp import pie

KEY, SALT = hashlib.sha1(b"k").digest(), b"salt-bytes"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_ejabberd_layout_with_xinclude_old_namespace_and_twice_encoded_keys() -> None:
    twice = {name: _b64(_b64(value).encode()) for name, value in (("salt", SALT), ("key", KEY))}
    main = b"<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>" \
           b"<xi:include href='host.xml'/></server-data>"
    host = (f"<host xmlns='http://www.xmpp.org/extensions/xep-0227.html#ns' jid='a.example'><user name='al'>"
            f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>4096</iter-count>"
            f"<salt>{twice['salt']}</salt><server-key>{twice['key']}</server-key><stored-key>{twice['key']}"
            f"</stored-key></scram-credentials><offline-messages><message from='b@a.example' to='al@a.example'>"
            f"<body>hi</body></message></offline-messages><query xmlns='jabber:iq:privacy'/></user></host>").encode()
    loaded: list[str] = []

    def load(href: str) -> bytes:
        loaded.append(href)
        return host

    [(domain, user)] = list(pie.read_users("main.xml", main, load))
    assert loaded == ["host.xml"] and domain == "a.example" and user.name == "al"
    assert user.credentials == [pie.Credentials("SHA-1", SALT, 4096, KEY, KEY)]
    assert user.offline == [b'<message xmlns="jabber:client" from="b@a.example" to="al@a.example"><body>hi</body>'
                            b"</message>"]  # the stanza moved from PIE's namespace into jabber:client
    assert user.unknown == ["<query xmlns='jabber:iq:privacy'> is not carried by Parlour's import"]


def test_what_parlour_writes_reads_back() -> None:
    user = pie.UserData(
        name="al", credentials=[pie.Credentials("SHA-256", SALT, 10000, hashlib.sha256(b"s").digest(),
                                                hashlib.sha256(b"v").digest())],
        roster=[pie.Contact("b@a.example", "Bee", "both", False, ("Friends",)),
                pie.Contact("c@b.example", None, "none", True)],
        pending=["d@b.example"], vcard=b'<vCard xmlns="vcard-temp"><FN>Al</FN></vCard>',
        private=[b'<storage xmlns="storage:bookmarks"/>'],
        offline=[b'<message xmlns="jabber:client" to="al@a.example"><body>x</body></message>'],
        pep=[pie.PepNode("urn:xmpp:avatar:data", {"pubsub#access_model": ("open",)},
                         (("i1", b'<data xmlns="urn:xmpp:avatar:data">AA==</data>'),))],
        archive=[pie.Archived("m1", "2026-01-01T00:00:00Z", b'<message xmlns="jabber:client" to="b@a.example"/>')],
    )
    document = b"".join(pie.write_document([("a.example & co", [user])]))
    [(domain, back)] = list(pie.read_users("x.xml", document, lambda href: b""))
    assert domain == "a.example & co"
    assert back.pep[0].config == {"FORM_TYPE": ("http://jabber.org/protocol/pubsub#node_config",),
                                  "pubsub#access_model": ("open",)}
    back.pep[0] = pie.PepNode(back.pep[0].node, {"pubsub#access_model": ("open",)}, back.pep[0].items)
    assert back == user


@pytest.mark.parametrize(("document", "why"), [
    (b"<server-data xmlns='urn:xmpp:pie:0'><user name='x'/></server-data>", "outside any <host>"),
    (b"<html/>", "not XEP-0227"),
    (b"<server-data", "not well-formed"),
    (b"<!DOCTYPE x [<!ENTITY e 'boom'>]><server-data xmlns='urn:xmpp:pie:0'><host jid='a'><user name='&e;'/>"
     b"</host></server-data>", "DOCTYPE"),
])
def test_bad_documents(document: bytes, why: str) -> None:
    with pytest.raises(pie.PieError, match=why):
        list(pie.read_users("f.xml", document, lambda href: b""))
