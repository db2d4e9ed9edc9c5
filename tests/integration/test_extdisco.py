"""External service discovery (XEP-0215) with TURN REST credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import replace
from pathlib import Path

from appliance.modules.extdisco import ExternalServicesOptions
from tests.integration.harness import make_config, start_harness
from tests.integration.stanzas import condition, iq, iq_error

EXTDISCO = "urn:xmpp:extdisco:2"
SECRET = "s3cret"


async def test_services_and_turn_credentials(tmp_path: Path) -> None:
    host = make_config(tmp_path).hosts[0]
    options = replace(host.modules.of(ExternalServicesOptions), secret=SECRET, credential_lifetime=3600.0, services=(
        "stun:turn.example.org", "turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349",
    ))
    harness = await start_harness(tmp_path, hosts=(replace(host, modules=host.modules.with_options(options)),))
    try:
        alice = await harness.user("alice")
        client = await harness.client(alice)
        info = await client.plugin["xep_0030"].get_info(harness.domain)
        assert EXTDISCO in info["disco_info"]["features"]

        reply = await iq(client, "get", f"<services xmlns='{EXTDISCO}'/>", to=harness.domain)
        services = list(reply.iter(f"{{{EXTDISCO}}}service"))
        assert [(s.get("type"), s.get("port"), s.get("transport")) for s in services] == [
            ("stun", "3478", "udp"), ("turn", "3478", "udp"), ("turns", "5349", "tcp")]
        assert services[0].get("username") is None
        turn = services[1]
        username, password = turn.get("username"), turn.get("password")
        expiry, _, user = username.partition(":")
        assert user == alice and 3500 < int(expiry) - time.time() <= 3601
        expected = base64.b64encode(hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()).decode()
        assert password == expected

        only_turn = await iq(client, "get", f"<services xmlns='{EXTDISCO}' type='turn'/>", to=harness.domain)
        assert [s.get("type") for s in only_turn.iter(f"{{{EXTDISCO}}}service")] == ["turn"]

        creds = await iq(client, "get", f"<credentials xmlns='{EXTDISCO}'><service type='turns' "
                                        f"host='turn.example.org'/></credentials>", to=harness.domain)
        (service,) = creds.iter(f"{{{EXTDISCO}}}service")
        assert service.get("type") == "turns" and service.get("password")
        error = await iq_error(client, "get", f"<credentials xmlns='{EXTDISCO}'><service type='turn' "
                                              f"host='other.example.org'/></credentials>", to=harness.domain)
        assert condition(error) == "item-not-found"
    finally:
        await harness.close()
