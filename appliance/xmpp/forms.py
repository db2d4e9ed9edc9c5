"""Data forms (XEP-0004): read the values of a submitted form and build forms, sans IO."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from appliance.xmpp.ns import NS_DATA

X = f"{{{NS_DATA}}}x"
FIELD = f"{{{NS_DATA}}}field"
VALUE = f"{{{NS_DATA}}}value"
OPTION = f"{{{NS_DATA}}}option"


@dataclass(frozen=True, slots=True)
class Field:
    """One field to render: its var, type, values, label and (for list types) the options."""

    var: str
    type: str
    values: tuple[str, ...] = ()
    label: str = ""
    options: tuple[str, ...] = ()
    required: bool = False


def form_type(form: etree._Element) -> str | None:
    """The hidden FORM_TYPE value of a form, if any."""
    for field in form.iter(FIELD):
        if field.get("var") == "FORM_TYPE":
            return field.findtext(VALUE)
    return None


def values(form: etree._Element) -> dict[str, tuple[str, ...]]:
    """Field var → its values, in document order (FORM_TYPE included)."""
    out: dict[str, tuple[str, ...]] = {}
    for field in form.iterchildren(FIELD):
        var = field.get("var")
        if var:
            out[var] = tuple(v.text or "" for v in field.iterchildren(VALUE))
    return out


def find(parent: etree._Element, namespace: str) -> etree._Element | None:
    """The first data form child of `parent` whose FORM_TYPE is `namespace`."""
    for form in parent.iterchildren(X):
        if form_type(form) == namespace:
            return form
    return None


def build(namespace: str, fields: Iterable[Field], *, type_: str = "form", title: str = "",
          instructions: str = "") -> etree._Element:
    """A form of `type_` with a hidden FORM_TYPE and the given fields."""
    form = etree.Element(X, nsmap={None: NS_DATA})
    form.set("type", type_)
    if title:
        etree.SubElement(form, f"{{{NS_DATA}}}title").text = title
    if instructions:
        etree.SubElement(form, f"{{{NS_DATA}}}instructions").text = instructions
    hidden = etree.SubElement(form, FIELD, var="FORM_TYPE", type="hidden")
    etree.SubElement(hidden, VALUE).text = namespace
    for spec in fields:
        field = etree.SubElement(form, FIELD, var=spec.var)
        if type_ != "submit":
            field.set("type", spec.type)
            if spec.label:
                field.set("label", spec.label)
            for option in spec.options:
                etree.SubElement(etree.SubElement(field, OPTION), VALUE).text = option
            if spec.required and type_ == "form":
                etree.SubElement(field, f"{{{NS_DATA}}}required")
        for value in spec.values:
            etree.SubElement(field, VALUE).text = value
    return form


def parse_bool(text: str) -> bool:
    """XEP-0004 boolean: "1"/"true" or "0"/"false"; anything else raises ValueError."""
    lowered = text.strip().lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise ValueError(text)
