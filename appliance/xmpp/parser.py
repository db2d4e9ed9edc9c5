"""Incremental XMPP stream parser: bytes in, stream-open / stanza / stream-close events out.

Built on expat (namespace-aware, DTD-free) with stanzas materialised as lxml elements. Expat is used
rather than lxml's own push parser because it rejects unbound prefixes and undefined entities, reports
DTDs, comments and processing instructions to us (so we can answer `<restricted-xml/>`), and tells the
byte offset of every event, which is what lets an idle stream drop its parser ("hibernate") and save
about 10 KiB per idle connection. A read that is exactly one plain stanza, the commonest read, skips expat
and is parsed by lxml in one call (`_whole_stanza`); whatever that path cannot vouch for goes to expat.
"""

from __future__ import annotations

import functools
import re
import xml.parsers.expat as expat
from dataclasses import dataclass

from lxml import etree

from appliance.xmpp.errors import StreamError
from appliance.xmpp.ns import NS_STREAM

_SEP = " "

# A read that holds exactly one small stanza (the usual read of a chat client) is parsed by libxml2 in one
# call instead of a Python callback per node: a third of the cost, more when the server wakes up for it.
# Anything unusual (markup declarations, comments, processing instructions, CDATA, prefixes, an empty
# namespace, more than one stanza, a partial one, an error) takes the expat path, which answers it exactly
# as before. A stanza that declares its default namespace first (as WebSocket clients must) is parsed as it is.
_WHOLE_MAX = 4096
_WHOLE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=False,
    remove_pis=False, collect_ids=False,
)
_START_TAG_NAME = re.compile(rb"<[^\s/>:]+")


@dataclass(frozen=True, slots=True)
class StreamOpen:
    """The stream header: its attributes (Clark-notation keys) and namespace declarations."""

    tag: str
    attrs: dict[str, str]
    namespaces: dict[str | None, str]

    @property
    def default_namespace(self) -> str | None:
        return self.namespaces.get(None)


@dataclass(frozen=True, slots=True)
class Stanza:
    """One complete top-level element (a stanza or a stream-level negotiation element)."""

    element: etree._Element


@dataclass(frozen=True, slots=True)
class StreamClose:
    """The peer closed its stream (`</stream:stream>`)."""


Event = StreamOpen | Stanza | StreamClose


# Element and attribute names repeat from stanza to stanza: their conversions are memoised (bounded,
# since a peer chooses them).
@functools.lru_cache(maxsize=4096)
def _clark(name: str) -> str:
    ns, sep, local = name.rpartition(_SEP)
    return f"{{{ns}}}{local}" if sep else local


@functools.lru_cache(maxsize=4096)
def _tag_and_namespace(name: str) -> tuple[str, str | None, etree._Element]:
    """Clark tag, namespace, and an empty element of that name declaring its namespace as the default.

    Copying that template (`__copy__`) costs a quarter of what `etree.Element` costs with an nsmap, and
    appending the copy to a parent of the same namespace drops its redundant declaration (lxml does that
    on every move between documents), so the tree is the same as one built with `SubElement`.
    """
    ns, sep, local = name.rpartition(_SEP)
    if not sep:
        return local, None, etree.Element(local)
    tag = f"{{{ns}}}{local}"
    return tag, ns, etree.Element(tag, nsmap={None: ns})


@functools.lru_cache(maxsize=4096)
def _split(tag: str) -> tuple[str | None, str]:
    if tag[0] == "{":
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


class StreamParser:
    """Parses one XML stream incrementally; `reset()` for the restarts after STARTTLS and SASL."""

    __slots__ = (
        "_content",
        "_default_decl",
        "_depth",
        "_events",
        "_fed",
        "_header_ns",
        "_last_event_at",
        "_last_lt",
        "_max_depth",
        "_max_stanza_size",
        "_parser",
        "_pending_ns",
        "_rebase",
        "_stack",
        "_stanza_start",
        "_swallow_header",
        "_text_parts",
    )

    def __init__(self, *, max_stanza_size: int = 262_144, max_depth: int = 64) -> None:
        self._max_stanza_size = max_stanza_size
        self._max_depth = max_depth
        self._parser: expat.XMLParserType | None = None
        self._header_ns: dict[str | None, str] = {}
        self.reset()

    # -- public API ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: the next bytes must start a new stream."""
        self._parser = None
        self._header_ns = {}
        self._default_decl = b""  # ` xmlns='…'` of the stream's default namespace, for whole stanzas
        self._depth = 0
        self._content = False  # the innermost open element has a child or text (so it cannot be `<x/>`)
        self._fed = 0
        self._stack: list[etree._Element] = []
        self._events: list[Event] = []
        self._pending_ns: dict[str | None, str] = {}
        self._stanza_start = 0
        self._last_event_at = -1
        self._last_lt = -1
        self._text_parts: list[str] = []
        self._rebase = 0
        self._swallow_header = False

    def feed(self, data: bytes) -> list[Event]:
        """Parse a chunk; returns the events it completed. Raises StreamError on bad input."""
        if self._depth == 1 and self._last_lt <= self._last_event_at and self._default_decl:
            whole = self._whole_stanza(data)
            if whole is not None:
                return [Stanza(whole)]
        parser = self._parser or self._wake()
        offset = self._fed
        self._fed += len(data)
        lt = data.rfind(b"<")
        if lt >= 0:
            self._last_lt = offset + lt
        try:
            parser.Parse(data, False)
        except expat.ExpatError as exc:
            raise _expat_error(exc) from None
        if self._depth > 1:
            if self._fed - self._stanza_start > self._max_stanza_size:
                raise StreamError.policy_violation("Stanza too large")
        elif self._last_lt > self._last_event_at and self._fed - self._last_lt > self._max_stanza_size:
            # A stanza's (or the header's) own start tag that never ends: expat buffers it whole.
            raise StreamError.policy_violation("Tag too large")
        events, self._events = self._events, []
        return events

    def _whole_stanza(self, data: bytes) -> etree._Element | None:
        """`data` parsed as one stanza between stanzas, or None: not that simple, for expat to parse."""
        size = len(data)
        if size > _WHOLE_MAX or size > self._max_stanza_size or b"<!" in data or b"<?" in data:
            return None
        if data.count(b"<") >= self._max_depth:  # no deeper than that (a start and an end tag per level)
            return None
        if b"xmlns:" in data or b"xmlns=''" in data or b'xmlns=""' in data:
            return None  # prefixes and undeclared namespaces: expat's tree serializes differently
        name = _START_TAG_NAME.match(data)
        if name is None:
            return None
        end = name.end()
        declared = data if data.startswith(b" xmlns=", end) else data[:end] + self._default_decl + data[end:]
        try:
            element = etree.fromstring(declared, _WHOLE_PARSER)
        except etree.XMLSyntaxError:
            return None
        offset = self._fed
        self._fed += size
        self._rebase += size  # expat never saw these bytes: its offsets move by as much
        self._last_lt = self._last_event_at = offset + data.rfind(b"<")
        self._content = True
        return element

    def take_events(self) -> list[Event]:
        """Events completed before an error interrupted `feed` (so they are not lost)."""
        events, self._events = self._events, []
        return events

    @property
    def can_hibernate(self) -> bool:
        """True when no stanza is open and every byte fed has been turned into events."""
        return self._parser is not None and self._depth == 1 and self._last_lt <= self._last_event_at

    def hibernate(self) -> bool:
        """Drop the expat parser of an idle stream; it is rebuilt transparently on the next feed."""
        if not self.can_hibernate:
            return False
        self._parser = None
        return True

    # -- parser construction ------------------------------------------------------------------

    def _new_parser(self) -> expat.XMLParserType:
        parser = expat.ParserCreate("UTF-8", namespace_separator=_SEP)
        parser.buffer_text = True
        parser.buffer_size = 16_384
        parser.ordered_attributes = False
        parser.specified_attributes = True
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartElementHandler = self._on_start
        parser.EndElementHandler = self._on_end
        parser.CharacterDataHandler = self._on_text
        parser.StartNamespaceDeclHandler = self._on_ns
        parser.XmlDeclHandler = self._on_xml_decl
        parser.StartDoctypeDeclHandler = self._restricted
        parser.CommentHandler = self._restricted
        parser.ProcessingInstructionHandler = self._restricted
        parser.EntityDeclHandler = self._restricted
        parser.ExternalEntityRefHandler = self._restricted
        parser.SkippedEntityHandler = self._restricted
        return parser

    def _wake(self) -> expat.XMLParserType:
        """Create the parser; after hibernation, replay a synthetic header with the same namespaces."""
        parser = self._new_parser()
        self._parser = parser
        if self._depth == 1:
            prefix = next((p for p, uri in self._header_ns.items() if uri == NS_STREAM and p), None)
            qname = f"{prefix}:stream" if prefix else "stream"
            decls = "".join(
                f" xmlns='{uri}'" if p is None else f" xmlns:{p}='{uri}'"
                for p, uri in self._header_ns.items()
            )
            header = f"<{qname}{decls}>".encode()
            self._rebase = self._fed - len(header)
            saved_last = self._last_event_at
            self._depth = 0
            self._swallow_header = True
            parser.Parse(header, False)
            self._last_event_at = saved_last
        return parser

    # -- expat callbacks ----------------------------------------------------------------------

    def _on_xml_decl(self, version: str | None, encoding: str | None, standalone: int) -> None:
        if self._depth > 0:
            raise StreamError.restricted_xml("XML declaration inside the stream")
        if encoding and encoding.replace("-", "").lower() != "utf8":
            raise StreamError.unsupported_encoding("Only UTF-8 is supported")

    def _on_ns(self, prefix: str | None, uri: str) -> None:
        self._pending_ns[prefix] = uri

    # The callbacks below run for every element of every stanza: they read expat's position directly,
    # flush text only when there is some, and build elements by copying a template per name.

    def _on_start(self, name: str, attrs: dict[str, str]) -> None:
        self._last_event_at = position = self._parser.CurrentByteIndex + self._rebase  # type: ignore[union-attr]
        tag, ns, template = _tag_and_namespace(name)
        for key in attrs:  # namespaced attributes are rare: convert the names only when there is one
            if _SEP in key:
                attrs = {(_clark(k) if _SEP in k else k): v for k, v in attrs.items()}
                break
        depth = self._depth
        self._content = False
        if depth == 0:
            self._on_header(tag, attrs)
            return
        if depth >= self._max_depth:
            raise StreamError.policy_violation("Elements nested too deeply")
        if self._text_parts:
            self._flush_text()
        if self._pending_ns:
            self._pending_ns.clear()
        if depth == 1:
            self._stanza_start = position
            element = template.__copy__()
        elif ns is not None:
            element = template.__copy__()
            self._stack[-1].append(element)
        else:  # no namespace (`xmlns=''`): nothing to inherit or declare
            element = etree.SubElement(self._stack[-1], tag)
        if attrs:
            put = element.set
            for key, value in attrs.items():
                put(key, value)
        self._stack.append(element)
        self._depth = depth + 1

    def _on_header(self, tag: str, attrs: dict[str, str]) -> None:
        namespaces = dict(self._pending_ns)
        self._pending_ns.clear()
        self._depth = 1
        if self._swallow_header:
            self._swallow_header = False
            return
        self._header_ns = namespaces
        default = namespaces.get(None)
        if default is not None and "'" not in default and "&" not in default and "<" not in default:
            self._default_decl = f" xmlns='{default}'".encode()
        ns, local = _split(tag)
        if local != "stream" or ns != NS_STREAM:
            raise StreamError.invalid_namespace("The stream root must be <stream:stream/>")
        self._events.append(StreamOpen(tag, attrs, namespaces))

    def _on_end(self, name: str) -> None:
        parser = self._parser
        if self._content:  # an element with content ends with its own `</x>` tag
            self._last_event_at = parser.CurrentByteIndex + self._rebase  # type: ignore[union-attr]
        else:  # `<x></x>` or `<x/>`: ask expat (its context is a copy of the rest of the buffer, so only here)
            context = parser.GetInputContext()  # type: ignore[union-attr]
            if context is not None and context.startswith(b"</"):
                self._last_event_at = parser.CurrentByteIndex + self._rebase  # type: ignore[union-attr]
            # else the end of an empty element `<x/>`: it began where its start event was recorded. (Expat
            # reports either that offset or the one just past the tag, where the next tag may begin.)
        self._content = True  # for the parent
        depth = self._depth - 1
        self._depth = depth
        if depth == 0:
            self._events.append(StreamClose())
            return
        if self._text_parts:
            self._flush_text()
        element = self._stack.pop()
        if depth == 1:
            if self._last_event_at - self._stanza_start > self._max_stanza_size:
                raise StreamError.policy_violation("Stanza too large")
            self._events.append(Stanza(element))

    def _on_text(self, text: str) -> None:
        self._content = True
        if self._depth > 1:
            self._text_parts.append(text)
        elif self._depth == 1 and not text.isspace():
            raise StreamError.bad_format("Character data between stanzas")

    def _flush_text(self) -> None:
        text = "".join(self._text_parts)
        self._text_parts.clear()
        element = self._stack[-1]
        if len(element):
            last = element[-1]
            last.tail = (last.tail or "") + text
        else:
            element.text = (element.text or "") + text

    def _restricted(self, *_args: object) -> None:
        raise StreamError.restricted_xml(
            "DTDs, comments, processing instructions and entities are not allowed"
        )


def _expat_error(exc: expat.ExpatError) -> StreamError:
    message = expat.ErrorString(exc.code) if exc.code else str(exc)
    if exc.code in (expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY],):
        return StreamError.restricted_xml("Entity references are not allowed")
    if exc.code == expat.errors.codes[expat.errors.XML_ERROR_UNBOUND_PREFIX]:
        return StreamError.bad_namespace_prefix("Unbound namespace prefix")
    if (
        exc.code == expat.errors.codes[expat.errors.XML_ERROR_INCORRECT_ENCODING]
        or exc.code == (expat.errors.codes[expat.errors.XML_ERROR_UNKNOWN_ENCODING])
    ):
        return StreamError.unsupported_encoding("Only UTF-8 is supported")
    return StreamError.not_well_formed(message)


__all__ = ["Event", "Stanza", "StreamClose", "StreamOpen", "StreamParser"]
