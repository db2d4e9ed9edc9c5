"""RFC 6120 §11: restricted XML and well-formedness on an established stream."""

from __future__ import annotations

import pytest

from tests.conformance.client import connect
from tests.conformance.conftest import ServerInfo, xfail_on

# §11.1: "An XMPP entity MUST NOT generate data that contains [comments, processing instructions, internal or
# external DTD subsets, internal or external entity references] ... Upon receiving such restricted XML data,
# the receiving entity MUST close the stream with a <restricted-xml/> stream error"; §4.9.3.18.


@xfail_on("ejabberd", reason="RFC 6120 §11.1: ejabberd 23.01 silently ignores an XML comment or a processing "
                             "instruction on the stream")
@xfail_on("prosody", reason="RFC 6120 §11.1: Prosody 0.12 answers an XML comment or a processing instruction "
                            "with not-well-formed instead of restricted-xml")
@pytest.mark.parametrize("data", ["<!-- a comment -->", "<?conformance test?>"], ids=["comment", "pi"])
async def test_restricted_xml(server: ServerInfo, data: str) -> None:
    async with connect(server, "alice") as c:
        await c.send(data)
        await c.expect_stream_error("restricted-xml", timeout=3.0)
        await c.wait_closed()


async def test_not_well_formed(server: ServerInfo) -> None:
    # §4.9.3.13 not-well-formed: "The initiating entity has sent XML that violates the well-formedness
    # rules of [XML] or [XML-NAMES]."
    async with connect(server, "alice") as c:
        await c.send(f"<message to='{server.jid('bob')}'><body>x</message>")
        await c.expect_stream_error("not-well-formed")
        await c.wait_closed()


async def test_oversized_stanza_is_policy_violation(server: ServerInfo) -> None:
    # §4.9.3.14 policy-violation: "The entity has violated some local service policy (e.g., a stanza
    # exceeds a configured size limit)". Every server here limits c2s stanzas to 256 KiB.
    async with connect(server, "alice") as c:
        await c.send(f"<message to='{server.jid('bob')}'><body>{'x' * 300_000}</body></message>")
        await c.expect_stream_error("policy-violation")
        await c.wait_closed()
