"""The update check reads apt's policy for Parlour (installed against candidate) from a real apt state."""

from __future__ import annotations

from pathlib import Path

from appliance.platform.updates import APPLY, Update, UpdateCheck, parse_policy
from tests.platform.apt_fixture import apt_root


async def check(options: tuple[str, ...]) -> Update | None:
    updates = UpdateCheck(apt_options=options)
    await updates.refresh()
    return updates.available


async def test_a_newer_version_in_the_package_lists_is_an_update(tmp_path: Path) -> None:
    options = apt_root(tmp_path, installed="0.1.0", available="0.2.0")
    assert await check(options) == Update("0.1.0", "0.2.0", APPLY)


async def test_no_update_when_the_lists_have_the_installed_version_or_an_older_one(tmp_path: Path) -> None:
    assert await check(apt_root(tmp_path / "same", installed="0.2.0", available="0.2.0")) is None
    assert await check(apt_root(tmp_path / "older", installed="0.2.0", available="0.1.9")) is None
    # Debian's order, not the strings': 0.10 is newer than 0.9, 1.0~rc1 older than 1.0.
    assert await check(apt_root(tmp_path / "ten", installed="0.9", available="0.10")) == Update("0.9", "0.10")
    assert await check(apt_root(tmp_path / "rc", installed="1.0", available="1.0~rc1")) is None


async def test_no_update_when_parlour_is_not_installed_by_apt(tmp_path: Path) -> None:
    assert await check(apt_root(tmp_path, installed=None, available="0.2.0")) is None


async def test_a_failing_apt_keeps_the_last_answer(tmp_path: Path) -> None:
    updates = UpdateCheck(apt_options=apt_root(tmp_path, installed="0.1.0", available="0.2.0"))
    await updates.refresh()
    assert updates.available == Update("0.1.0", "0.2.0")
    updates.apt_options = ("--no-such-option",)  # apt-cache exits with 100
    await updates.refresh()
    assert updates.available == Update("0.1.0", "0.2.0")


def test_parse_policy() -> None:
    text = "parlour:\n  Installed: 0.1.0\n  Candidate: 0.2.0\n  Version table:\n     0.2.0 500\n"
    assert parse_policy(text) == ("0.1.0", "0.2.0")
    assert parse_policy("parlour:\n  Installed: (none)\n  Candidate: 0.2.0\n") == (None, "0.2.0")
    assert parse_policy("") == (None, None)
