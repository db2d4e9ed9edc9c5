"""Entity capabilities (XEP-0115): the verification string and hash of a disco#info answer, sans IO."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from lxml import etree

from appliance.xmpp import forms
from appliance.xmpp.ns import NS_CAPS, NS_DISCO_INFO

C = f"{{{NS_CAPS}}}c"
HASHES = {"sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512"}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

Identity = tuple[str, str, str, str]  # category, type, xml:lang, name


def verification_string(
    identities: Iterable[Identity], features: Iterable[str], extensions: Iterable[etree._Element] = ()
) -> str:
    """XEP-0115 §5.1: identities, features and extension forms in the canonical order."""
    out = ["".join(f"{'/'.join(ident)}<" for ident in sorted(identities))]
    out.extend(f"{feature}<" for feature in sorted(set(features)))
    typed = [(forms.form_type(form) or "", form) for form in extensions]
    for form_type, form in sorted((t, f) for t, f in typed if t):
        out.append(f"{form_type}<")
        fields = {var: vals for var, vals in forms.values(form).items() if var != "FORM_TYPE"}
        for var in sorted(fields):
            out.append(f"{var}<" + "".join(f"{value}<" for value in sorted(fields[var])))
    return "".join(out)


def ver(verification: str, algo: str = "sha-1") -> str:
    """The base64 hash of a verification string."""
    digest = hashlib.new(HASHES[algo], verification.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def of_disco_info(query: etree._Element, algo: str = "sha-1") -> str:
    """The caps hash of a disco#info <query/>."""
    identities = [
        (i.get("category", ""), i.get("type", ""), i.get(XML_LANG, ""), i.get("name", ""))
        for i in query.iterchildren(f"{{{NS_DISCO_INFO}}}identity")
    ]
    features = [f.get("var", "") for f in query.iterchildren(f"{{{NS_DISCO_INFO}}}feature")]
    extensions = list(query.iterchildren(forms.X))
    return ver(verification_string(identities, features, extensions), algo)


def features_of(query: etree._Element) -> frozenset[str]:
    return frozenset(f.get("var", "") for f in query.iterchildren(f"{{{NS_DISCO_INFO}}}feature"))


def element(node: str, ver_: str, algo: str = "sha-1") -> etree._Element:
    """<c xmlns='http://jabber.org/protocol/caps' hash=… node=… ver=…/>."""
    return etree.Element(C, {"hash": algo, "node": node, "ver": ver_}, nsmap={None: NS_CAPS})
