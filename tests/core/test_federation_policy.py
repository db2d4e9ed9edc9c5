"""The federation policy's answers for each [federation] setting, read live on every question."""

from __future__ import annotations

from appliance.config.model import FederationConfig
from appliance.core.federation_policy import FederationPolicy, covers


def test_a_rule_covers_the_domain_and_its_subdomains_only() -> None:
    assert covers(("evil.example",), "evil.example")
    assert covers(("evil.example",), "muc.evil.example")
    assert not covers(("evil.example",), "notevil.example")
    assert not covers((), "evil.example")


def test_answers_follow_the_running_settings() -> None:
    settings = [FederationConfig()]
    policy = FederationPolicy(lambda: settings[0])
    off = policy.refusal("friend.example")
    assert off is not None and off.stanza_error().condition == "not-allowed"
    settings[0] = FederationConfig(enabled=True, blocked_domains=("evil.example",))
    assert policy.accepts("friend.example") and policy.stream_refusal("friend.example") is None
    refused = policy.stream_refusal("chat.evil.example")
    assert refused is not None and refused.condition == "policy-violation"
    assert refused.text == "chat.evil.example is blocked on this server"
    settings[0] = FederationConfig(enabled=True, mode="allowlist", allowed_domains=("friend.example",),
                                   blocked_domains=("bad.friend.example",))
    assert policy.accepts("friend.example") and policy.accepts("muc.friend.example")
    assert not policy.accepts("bad.friend.example")  # a block wins over an allowance
    assert not policy.accepts("stranger.example")
    assert not policy.silent
    settings[0] = FederationConfig(enabled=True, silent_drop=True)
    assert policy.silent
