"""Setup's configuration is a TOML document built by tomlkit (comments kept, values quoted by the writer),
validated before anything is written, and completed on the database it is handed."""

from __future__ import annotations

from pathlib import Path

import tomlkit

from appliance.app.storage import Storage
from appliance.catalog import load_config
from appliance.core.accounts import AccountService
from appliance.modules.register import RegisterOptions
from appliance.services.settings import Settings
from appliance.services.setup import SetupAnswers, SetupError, SetupService, setup_document
from appliance.xmpp.jid import JID

PASSWORD = "a long admin secret"


def answers(**changes: object) -> SetupAnswers:
    out = SetupAnswers(domain="chat.example.org", admin="boss", password=PASSWORD)
    for name, value in changes.items():
        setattr(out, name, value)
    return out


def test_the_document_carries_its_comments_and_every_choice(tmp_path: Path) -> None:
    tricky = tmp_path / 'state "quoted" \\ dir'  # quoting is the writer's job, not string pasting
    doc = setup_document(answers(certificate="acme", acme_email="ops@example.org", group_chat=False,
                                 history_days=0, extra={"limits": {"auth_failure_delay": 0}}), tricky)
    text = tomlkit.dumps(doc)
    assert text.startswith("# Parlour configuration, written by setup on ")
    assert "# Certificate: Let's Encrypt, requested and renewed automatically." in text
    data = tomlkit.parse(text).unwrap()
    assert data["server"] == {"state_dir": str(tricky), "admins": ["boss@chat.example.org"]}
    assert data["acme"] == {"enabled": True, "email": "ops@example.org", "agree_tos": True}
    assert data["modules"]["disabled"] == ["muc", "mam"]
    assert data["modules"]["upload"] == {"quota": "1024MiB"}
    assert data["limits"] == {"auth_failure_delay": 0}
    assert data["hosts"] == {"chat.example.org": {}}
    assert data["federation"] == {"enabled": False}  # the wizard's default: a LAN-only office
    assert "# Users of other XMPP servers: off" in text
    assert data["turn"] == {"enabled": True}  # calls are on unless the wizard's box is cleared
    assert "open port 3478 (UDP and TCP)" in text


def test_clearing_calls_turns_the_turn_server_off(tmp_path: Path) -> None:
    text = tomlkit.dumps(setup_document(answers(calls=False), tmp_path))
    assert tomlkit.parse(text).unwrap()["turn"] == {"enabled": False}


def test_the_federation_answer_turns_federation_on(tmp_path: Path) -> None:
    text = tomlkit.dumps(setup_document(answers(federation=True), tmp_path))
    assert tomlkit.parse(text).unwrap()["federation"] == {"enabled": True}
    assert "parlour federation block" in text


def test_a_bad_domain_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    try:
        setup_document(answers(domain="not a name"), tmp_path)
    except SetupError as exc:
        assert "not a valid server name" in str(exc)
    else:
        raise AssertionError("an invalid domain was accepted")


async def test_complete_writes_once_on_the_given_store_and_the_console_keeps_the_comments(tmp_path: Path) -> None:
    config_path, state_dir = tmp_path / "etc" / "parlour.toml", tmp_path / "state"
    storage = await Storage.open(state_dir)
    try:
        setup = SetupService(config_path=config_path, state_dir=state_dir, accounts=storage.stores.accounts)
        config = await setup.complete(answers())
        assert config == load_config(config_path)  # what was validated is what was written
        assert sorted(p.name for p in config_path.parent.iterdir()) == ["parlour.toml"]  # no temp files
        accounts = AccountService(storage.stores.accounts, iterations=config.limits.scram_iterations)
        assert await accounts.verify_plain(JID.parse("boss@chat.example.org"), PASSWORD)

        async def reload(new: object) -> list[str]:
            return []

        await Settings(lambda: config, reload).apply("boss@chat.example.org", {"modules.register.policy": "open"})
        text = config_path.read_text()
        assert "# Reference: docs/configuration.md." in text
        assert load_config(config_path).hosts[0].modules.of(RegisterOptions).policy == "open"
    finally:
        await storage.close()


async def test_a_refused_configuration_writes_nothing_and_creates_no_one(tmp_path: Path) -> None:
    config_path, state_dir = tmp_path / "parlour.toml", tmp_path / "state"
    storage = await Storage.open(state_dir)
    try:
        setup = SetupService(config_path=config_path, state_dir=state_dir, accounts=storage.stores.accounts)
        try:
            await setup.complete(answers(extra={"c2s": {"port": "not a port"}}))
        except SetupError as exc:
            assert "c2s.port" in str(exc)
        else:
            raise AssertionError("an invalid configuration was accepted")
        assert not config_path.exists()
        assert await storage.stores.accounts.count("chat.example.org") == 0
    finally:
        await storage.close()
