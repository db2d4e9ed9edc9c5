"""Cross-server features with a real ejabberd: juliet@parlour.test on Parlour, romeo@ejabberd.test on
ejabberd (with its MUC on rooms.ejabberd.test, PubSub on pubsub.ejabberd.test and PEP on the account
host), in a network namespace with its own DNS view as in test_federation_ejabberd. One ejabberd and one
Parlour serve the module; each test has its own accounts. The scenarios are those played against Prosody
(cross_server): rooms both ways, PEP both ways, a remote PubSub subscription, carbons and MAM of a
conversation, vCard/last activity/version/disco of ejabberd JIDs, blocking, and ejabberd's IQ errors."""

from __future__ import annotations

import pytest

from tests.integration.cross_server import CrossServerFeatures
from tests.integration.ejabberd_peer import EjabberdPeer, unavailable

REASON = unavailable()


@pytest.mark.skipif(REASON is not None, reason=f"ejabberd federation tests: {REASON}")
class TestEjabberd(CrossServerFeatures):
    """ejabberd 23.01 with mod_muc, mod_pubsub (PEP too), mod_carboncopy, mod_vcard, mod_last, mod_version."""

    domain, product, namespace, peer = "ejabberd.test", "ejabberd", 3, EjabberdPeer
