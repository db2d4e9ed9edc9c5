"""Translations of the web pages: Babel catalogs compiled from their .po files when first used.

The repository keeps only the .po sources (appliance/web/locale/<lang>/LC_MESSAGES/messages.po);
Babel compiles each one in memory, so no build step and no committed .mo files are needed.
English is the source language. The current request's language lives in a context variable, so the
`_()` that templates and handlers call needs no request argument.
"""

from __future__ import annotations

import contextvars
import gettext
import io
from functools import cache
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES: dict[str, str] = {"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español"}
"""Supported languages, each named in itself (for the switcher)."""

DEFAULT = "en"
COOKIE = "parlour_lang"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("parlour_lang", default=DEFAULT)


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of a language (NullTranslations for English or a missing catalog)."""
    if lang == DEFAULT or lang not in LANGUAGES:
        return gettext.NullTranslations()
    po = resources.files("appliance.web") / "locale" / lang / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def set_language(lang: str) -> contextvars.Token[str]:
    return _current.set(lang if lang in LANGUAGES else DEFAULT)


def current_language() -> str:
    return _current.get()


def gettext_(message: str, **variables: object) -> str:
    """Translate `message` into the current language; `%(name)s` placeholders are filled from kwargs."""
    text = translations(_current.get()).gettext(message)
    return text % variables if variables else text


def ngettext_(singular: str, plural: str, n: int, **variables: object) -> str:
    text = translations(_current.get()).ngettext(singular, plural, n)
    return text % {"num": n, **variables}


_ = gettext_


def lazy(message: str) -> str:
    """Mark a string for extraction where it is defined; translate it with `_()` where it is shown."""
    return message


def negotiate(accept_language: str | None) -> str | None:
    """The best supported language for an Accept-Language header, or None."""
    if not accept_language:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _eq, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else None


__all__ = ["COOKIE", "LANGUAGES", "_", "current_language", "gettext_", "lazy", "negotiate", "ngettext_",
           "set_language", "translations"]
