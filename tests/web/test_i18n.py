"""The translation catalogs: complete for every language, placeholders intact, current with the code."""

from __future__ import annotations

import re

import pytest

from appliance.util import i18n
from appliance.web import catalogs

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.mark.parametrize("lang", [lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT])
def test_every_message_is_translated_with_the_same_placeholders(lang: str) -> None:
    translations = i18n.translations(lang)
    for message in catalogs.extract():
        if not message.id:
            continue
        translated = translations.gettext(message.id)
        assert translated != message.id or message.id in {"Version", "Online", "Administrator", "Console",
                                                          "Filter", "Actions", "Invitations", "local", "no",
                                                          "Status", "Name", "%(name)s: %(allowed)s",
                                                          "%(h)s h %(m)s min"}, (lang, message.id)
        assert sorted(PLACEHOLDER.findall(translated)) == sorted(PLACEHOLDER.findall(message.id)), (lang, message.id)


def test_accept_language_negotiation() -> None:
    assert i18n.negotiate("de-CH, fr;q=0.9, en;q=0.8") == "de"
    assert i18n.negotiate("it, es;q=0.5") == "es"
    assert i18n.negotiate("fr;q=0, en;q=0.1") == "en"
    assert i18n.negotiate("zh") is None
    assert i18n.negotiate(None) is None
