"""Maintaining the translation catalogs: `python -m appliance.web.catalogs` extracts every message of
the web pages and of the services they show (Python `_()`/`lazy()` and the templates) into messages.pot
and merges it into each language's messages.po, keeping existing translations. Translators then fill
the empty msgstr."""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

WEB = Path(__file__).parent
SERVICES = WEB.parent / "services"  # their errors and notices are shown on the pages
LOCALE = WEB / "locale"
KEYWORDS = {"_": None, "gettext_": None, "lazy": None, "ngettext_": (1, 2)}
METHODS = [("templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}}


def extract() -> Catalog:
    """Every translatable message in appliance/web and appliance/services, with where it is used."""
    catalog = Catalog(project="Parlour", domain="messages")
    for folder in (WEB, SERVICES):
        prefix = "" if folder == WEB else f"../{folder.name}/"
        for filename, lineno, message, comments, context in extract_from_dir(
            folder, method_map=METHODS, options_map=OPTIONS, keywords=KEYWORDS
        ):
            catalog.add(message, locations=[(prefix + filename, lineno)], auto_comments=comments, context=context)
    return catalog


def update() -> list[str]:
    """Write messages.pot and merge it into every language; returns "lang: N untranslated" lines."""
    from appliance.util.i18n import DEFAULT, LANGUAGES

    template = extract()
    with open(LOCALE / "messages.pot", "wb") as f:
        write_po(f, template, width=100, omit_header=False, sort_output=False)
    report = []
    for lang in LANGUAGES:
        if lang == DEFAULT:
            continue
        path = LOCALE / lang / "LC_MESSAGES" / "messages.po"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with open(path, "rb") as f:
                catalog = read_po(f, locale=lang)
        else:
            catalog = Catalog(locale=lang, project="Parlour", domain="messages")
        catalog.update(template, no_fuzzy_matching=True)
        with open(path, "wb") as f:
            write_po(f, catalog, width=100, ignore_obsolete=True)
        missing = sum(1 for m in catalog if m.id and not m.string)
        report.append(f"{lang}: {missing} untranslated")
    return report


if __name__ == "__main__":
    print("\n".join(update()))
    sys.exit(0)
