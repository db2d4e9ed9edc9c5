"""Several domains in one server: separate accounts, chat across hosts, one certificate naming all of them."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace
from pathlib import Path

from cryptography import x509

from tests.integration.harness import PASSWORD, Client, make_config, start_harness


async def test_two_hosts_chat_and_keep_accounts_apart(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    second = replace(cfg.hosts[0], name="example.test")
    harness = await start_harness(tmp_path, hosts=(cfg.hosts[0], second))
    try:
        alice = await harness.user("alice")  # alice@localhost
        assert harness.server.accounts is not None
        from appliance.xmpp.jid import JID

        await harness.server.accounts.create(JID.parse("bob@example.test"), PASSWORD)
        a = await harness.client(alice)
        b = Client("bob@example.test/home", PASSWORD, harness.ca_file)
        harness.clients.append(b)
        b.connect(host="127.0.0.1", port=harness.port)  # SNI and 'to' name example.test
        await asyncio.wait_for(b.started.wait(), 15)
        b.send_presence()
        a.send_message(mto="bob@example.test/home", mbody="across hosts", mtype="chat")
        assert (await b.next_message())["body"] == "across hosts"
        # The same username on the other host is a different account.
        a.send_message(mto="alice@example.test", mbody="?", mtype="chat")
        error = await a.next_message()
        assert error["error"]["condition"] == "service-unavailable"
        # One local certificate carries every hosted name.
        cert = x509.load_pem_x509_certificate((tmp_path / "certs" / "localhost.pem").read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
        assert {"localhost", "example.test"} <= set(names)
        context = ssl.create_default_context(cafile=str(harness.ca_file))
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", harness.tls_port, ssl=context, server_hostname="example.test"
        )
        writer.close()
    finally:
        await harness.close()
