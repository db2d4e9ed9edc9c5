"""Dialback errors (XEP-0220 §2.4) between two Parlours over real sockets. a.test also serves a2.test and
a3.test, which ride on a.test's stream to b.test (piggybacking). b.test cannot reach a2.test's server to
check its key (remote-connection-failed) and blocks a3.test (policy-violation): both get a dialback
error, not a stream error, so a.test's traffic goes on on the same stream; a2's and a3's stanzas come back
to their senders at once with remote-server-timeout (§2.1.3), not after the queue's timeout."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from appliance.app import Parlour
from appliance.config.model import FederationConfig
from appliance.xmpp.jid import JID
from tests.integration.federated import FEDERATION_ON, s2s_route, start_server
from tests.integration.harness import PASSWORD, Client, Harness, free_port, make_config


async def test_dialback_errors_bounce_that_host_and_keep_the_stream(tmp_path: Path) -> None:
    port_a, port_b, dead = free_port(), free_port(), free_port()
    cfg = make_config(tmp_path / "a")
    host = cfg.hosts[0]
    cfg = replace(cfg, hosts=tuple(replace(host, name=name) for name in ("a.test", "a2.test", "a3.test")),
                  federation=FEDERATION_ON, s2s=s2s_route(port_a, "b.test", port_b, bidi=False, queue_timeout=30.0))
    a = Harness(Parlour(cfg))
    await a.server.start()
    b_s2s = s2s_route(port_b, "a.test", port_a, bidi=False)
    # b.test reaches a.test, but a2.test's server is nowhere to be found (nothing listens there)
    b_s2s = replace(b_s2s, static_routes=(*b_s2s.static_routes, f"a2.test=127.0.0.1:{dead}",
                                          f"a3.test=127.0.0.1:{port_a}"))
    blocking = FederationConfig(enabled=True, blocked_domains=("a3.test",))
    b = await start_server(tmp_path / "b", "b.test", b_s2s, blocking)
    try:
        romeo = await b.client(await b.user("romeo"))
        senders: dict[str, Client] = {}
        for domain in ("a.test", "a2.test", "a3.test"):
            assert a.server.accounts is not None
            await a.server.accounts.create(JID.parse(f"juliet@{domain}"), PASSWORD)
            senders[domain] = await a.client(f"juliet@{domain}")
        senders["a.test"].send_message(mto="romeo@b.test", mbody="first", mtype="chat")
        assert (await romeo.next_message(10))["body"] == "first"

        for domain, condition in (("a2.test", "remote-connection-failed"), ("a3.test", "policy-violation")):
            senders[domain].send_message(mto="romeo@b.test", mbody=f"from {domain}", mtype="chat")
            error = await senders[domain].next_message(10)  # well before the 30 s queue timeout
            assert error["type"] == "error" and error["body"] == f"from {domain}"
            assert error["error"]["condition"] == "remote-server-timeout"
            assert error["error"]["text"] == f"b.test did not accept {domain}: dialback error: {condition}"

        # the stream was not closed: a.test's stanzas still go on it, nothing else reached romeo
        senders["a.test"].send_message(mto="romeo@b.test", mbody="still here", mtype="chat")
        assert (await romeo.next_message(10))["body"] == "still here"
        assert a.server.federation is not None
        [link] = [c for c in a.server.federation.federation.connections() if c.outgoing]
        assert link.machine.pairs == {("b.test", "a.test")} and link.stanzas_out == 2
    finally:
        await a.close()
        await b.close()
