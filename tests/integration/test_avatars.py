"""User avatars (XEP-0084) → vCard PHOTO (XEP-0398) and the photo hash in presence (XEP-0153)."""

from __future__ import annotations

import base64
import hashlib

from slixmpp.plugins.xep_0084.stanza import MetaData

from tests.integration.harness import Harness
from tests.integration.pubsub_helpers import befriend, pubsub_client

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # any bytes will do for the server


async def test_published_avatar_becomes_vcard_photo_and_presence_hash(harness: Harness) -> None:
    alice_jid, alice = await pubsub_client(harness, "alice", presence=False)
    bob_jid, bob = await pubsub_client(harness, "bob")
    await befriend(harness, (alice_jid, bob_jid))
    for plugin in ("xep_0054", "xep_0084", "xep_0153"):
        alice.register_plugin(plugin)
    bob.register_plugin("xep_0054")
    avatar_id = hashlib.sha1(IMAGE).hexdigest()

    await alice.plugin["xep_0084"].publish_avatar(IMAGE)
    metadata = MetaData()
    metadata.add_info(avatar_id, "image/png", str(len(IMAGE)), height="64", width="64")
    await alice.plugin["xep_0060"].publish(alice_jid, "urn:xmpp:avatar:metadata", id=avatar_id,
                                           payload=metadata.xml)

    vcard = await bob.plugin["xep_0054"].get_vcard(alice_jid, cached=False)
    photo = vcard["vcard_temp"]["PHOTO"]
    assert photo["TYPE"] == "image/png"
    assert photo["BINVAL"] == IMAGE

    alice.send_presence()
    while True:
        presence = await bob.next_presence()
        if presence["from"].bare == alice_jid and presence["type"] == "available":
            break
    update = presence.xml.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
    assert update is not None and update.text == avatar_id
    assert base64.b64encode(IMAGE)
