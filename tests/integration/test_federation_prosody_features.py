"""Cross-server features with a real Prosody: juliet@parlour.test on Parlour, romeo@prosody.test on Prosody
(with its MUC on rooms.prosody.test and PubSub on pubsub.prosody.test), in a network namespace with its
own DNS view as in test_federation_prosody. One Prosody and one Parlour serve the module; each test has
its own accounts. Covered: a Prosody user in a Parlour room and a Parlour user in a Prosody room
(occupants, history, messages, kick), PEP from a Prosody user to a Parlour contact with +notify, a
Parlour user subscribed to a Prosody PubSub node, carbons and MAM of a conversation with a Prosody user,
vCard/last activity/version/disco of Prosody JIDs, blocking a Prosody JID, and Prosody's IQ errors."""

from __future__ import annotations

import pytest

from tests.integration.cross_server import CrossServerFeatures
from tests.integration.prosody_peer import ProsodyPeer, unavailable

REASON = unavailable()


@pytest.mark.skipif(REASON is not None, reason=f"Prosody federation tests: {REASON}")
class TestProsody(CrossServerFeatures):
    """Prosody 0.12 with its MUC and PubSub components."""

    domain, product, namespace, peer = "prosody.test", "Prosody", 2, ProsodyPeer
