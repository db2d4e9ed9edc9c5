"""STUN messages (RFC 8489) with the TURN methods and attributes (RFC 8656): parsing and building.

Written here rather than taken from aioice (which the tests use as an independent TURN client): a server
must see every attribute a client sends, to answer 420 (Unknown Attribute) for comprehension-required ones
it does not know and to honour EVEN-PORT, DONT-FRAGMENT and RESERVATION-TOKEN; aioice's parser drops the
attributes it does not know, and its API is built for an ICE agent.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

MAGIC_COOKIE = 0x2112A442
HEADER = struct.Struct("!HHI12s")
HEADER_SIZE = 20
FINGERPRINT_XOR = 0x5354554E


class Method(IntEnum):
    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009


class Class(IntEnum):
    REQUEST = 0x000
    INDICATION = 0x010
    SUCCESS = 0x100
    ERROR = 0x110


class Attr(IntEnum):
    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    CHANNEL_NUMBER = 0x000C
    LIFETIME = 0x000D
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_ADDRESS_FAMILY = 0x0017
    EVEN_PORT = 0x0018
    REQUESTED_TRANSPORT = 0x0019
    DONT_FRAGMENT = 0x001A
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022
    PRIORITY = 0x0024
    USE_CANDIDATE = 0x0025
    ADDITIONAL_ADDRESS_FAMILY = 0x8000
    SOFTWARE = 0x8022
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029
    ICE_CONTROLLING = 0x802A


KNOWN = frozenset(int(a) for a in Attr)
Address = tuple[str, int]


class StunParseError(ValueError):
    """Bytes that are not a well-formed STUN message (dropped silently, as RFC 8489 §6.3 says)."""


def _type_of(method: int, cls: int) -> int:
    return (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2) | cls


def _split_type(message_type: int) -> tuple[int, int]:
    method = (message_type & 0x000F) | ((message_type & 0x00E0) >> 1) | ((message_type & 0x3E00) >> 2)
    return method, message_type & 0x0110


@dataclass(slots=True)
class Message:
    """One STUN message: attributes are kept raw, in order, as (type, value) pairs."""

    method: int
    cls: int
    transaction_id: bytes = field(default_factory=lambda: os.urandom(12))
    attributes: list[tuple[int, bytes]] = field(default_factory=list)
    raw: bytes = b""  # the bytes it was parsed from (integrity checks need them)

    # -- reading ------------------------------------------------------------------------------

    def get(self, attr: int) -> bytes | None:
        for kind, value in self.attributes:
            if kind == attr:
                return value
        return None

    def all(self, attr: int) -> list[bytes]:
        return [value for kind, value in self.attributes if kind == attr]

    def has(self, attr: int) -> bool:
        return self.get(attr) is not None

    def text(self, attr: int) -> str | None:
        value = self.get(attr)
        return value.decode("utf-8", "replace") if value is not None else None

    def unsigned(self, attr: int) -> int | None:
        value = self.get(attr)
        if value is None:
            return None
        if len(value) != 4:
            raise StunParseError(f"attribute {attr:#06x} must be 4 bytes")
        return int(struct.unpack("!I", value)[0])

    def xor_address(self, attr: int) -> Address | None:
        value = self.get(attr)
        return decode_xor_address(value, self.transaction_id) if value is not None else None

    def xor_addresses(self, attr: int) -> list[Address]:
        return [decode_xor_address(value, self.transaction_id) for value in self.all(attr)]

    def unknown_required(self) -> list[int]:
        """Comprehension-required attributes (below 0x8000) this server does not know."""
        return [kind for kind, _ in self.attributes if kind < 0x8000 and kind not in KNOWN]

    def integrity_ok(self, key: bytes) -> bool:
        """Whether MESSAGE-INTEGRITY (HMAC-SHA1 over the message up to it) matches `key`."""
        offset = _attribute_offset(self.raw, Attr.MESSAGE_INTEGRITY)
        if offset is None:
            return False
        received = self.raw[offset + 4:offset + 24]
        covered = bytearray(self.raw[:offset])
        struct.pack_into("!H", covered, 2, offset + 24 - HEADER_SIZE)
        return hmac.compare_digest(received, hmac.new(key, bytes(covered), hashlib.sha1).digest())

    # -- writing ------------------------------------------------------------------------------

    def add(self, attr: int, value: bytes) -> Message:
        self.attributes.append((attr, value))
        return self

    def add_text(self, attr: int, text: str) -> Message:
        return self.add(attr, text.encode("utf-8"))

    def add_unsigned(self, attr: int, number: int) -> Message:
        return self.add(attr, struct.pack("!I", number))

    def add_xor_address(self, attr: int, address: Address) -> Message:
        return self.add(attr, encode_xor_address(address, self.transaction_id))

    def add_error(self, code: int, reason: str) -> Message:
        return self.add(Attr.ERROR_CODE, struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode())

    def encode(self, integrity_key: bytes | None = None, *, fingerprint: bool = True) -> bytes:
        """The message on the wire, with MESSAGE-INTEGRITY when a key is given, then FINGERPRINT."""
        body = b"".join(_tlv(kind, value) for kind, value in self.attributes)
        message = self._header(len(body)) + body
        if integrity_key is not None:
            covered = self._header(len(body) + 24) + body
            message = covered + _tlv(Attr.MESSAGE_INTEGRITY, hmac.new(integrity_key, covered, hashlib.sha1).digest())
        if fingerprint:
            length = len(message) - HEADER_SIZE + 8
            covered = self._header(length) + message[HEADER_SIZE:]
            crc = (zlib.crc32(covered) & 0xFFFFFFFF) ^ FINGERPRINT_XOR
            message = covered + _tlv(Attr.FINGERPRINT, struct.pack("!I", crc))
        return message

    def _header(self, length: int) -> bytes:
        return HEADER.pack(_type_of(self.method, self.cls), length, MAGIC_COOKIE, self.transaction_id)

    def reply(self, cls: int) -> Message:
        """A response of class `cls` to this request (same method and transaction)."""
        return Message(self.method, cls, self.transaction_id)


def _tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\x00" * (-len(value) % 4)


def _walk(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(offset, type, value) of each attribute; raises StunParseError when one overruns the message."""
    offset = HEADER_SIZE
    while offset < len(data):
        if offset + 4 > len(data):
            raise StunParseError("truncated attribute header")
        kind, length = struct.unpack_from("!HH", data, offset)
        end = offset + 4 + length
        if end > len(data):
            raise StunParseError("attribute longer than the message")
        yield offset, kind, data[offset + 4:end]
        offset = end + (-length % 4)


def _attribute_offset(data: bytes, wanted: int) -> int | None:
    for offset, kind, _ in _walk(data):
        if kind == wanted:
            return offset
    return None


def is_stun(data: bytes) -> bool:
    """Whether `data` looks like a STUN message: the first two bits zero and the magic cookie."""
    return len(data) >= HEADER_SIZE and data[0] < 0x40 and data[4:8] == b"\x21\x12\xa4\x42"


def parse(data: bytes) -> Message:
    """A STUN message from one datagram or one framed TCP message; FINGERPRINT is checked when present."""
    if not is_stun(data):
        raise StunParseError("not a STUN message")
    message_type, length, _, transaction_id = HEADER.unpack_from(data)
    if length % 4 or HEADER_SIZE + length != len(data):
        raise StunParseError("length does not match")
    method, cls = _split_type(message_type)
    message = Message(method, cls, transaction_id, raw=bytes(data))
    after_integrity = False
    for offset, kind, value in _walk(data):
        if kind == Attr.FINGERPRINT:
            covered = bytearray(data[:offset])
            struct.pack_into("!H", covered, 2, offset + 8 - HEADER_SIZE)
            if len(value) != 4 or struct.unpack("!I", value)[0] != (zlib.crc32(covered) & 0xFFFFFFFF) ^ FINGERPRINT_XOR:
                raise StunParseError("FINGERPRINT does not match")
            break
        if after_integrity:
            continue  # RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY (but FINGERPRINT) are ignored
        message.attributes.append((kind, value))
        if kind == Attr.MESSAGE_INTEGRITY:
            after_integrity = True
    return message


def encode_xor_address(address: Address, transaction_id: bytes) -> bytes:
    host, port = address
    ip = ipaddress.ip_address(host)
    xport = port ^ (MAGIC_COOKIE >> 16)
    mask = struct.pack("!I", MAGIC_COOKIE) + (transaction_id if ip.version == 6 else b"")
    packed = bytes(a ^ b for a, b in zip(ip.packed, mask, strict=False))
    return struct.pack("!BBH", 0, 1 if ip.version == 4 else 2, xport) + packed


def decode_xor_address(value: bytes, transaction_id: bytes) -> Address:
    if len(value) < 8:
        raise StunParseError("address attribute too short")
    _, family, xport = struct.unpack_from("!BBH", value)
    size = {1: 4, 2: 16}.get(family)
    if size is None or len(value) != 4 + size:
        raise StunParseError("bad address family")
    mask = struct.pack("!I", MAGIC_COOKIE) + transaction_id
    packed = bytes(a ^ b for a, b in zip(value[4:], mask, strict=False))
    return str(ipaddress.ip_address(packed)), xport ^ (MAGIC_COOKIE >> 16)


# -- ChannelData (RFC 8656 §12.4) -------------------------------------------------------------

# RFC 8656 narrowed channels to 0x4000-0x4FFF; RFC 5766 clients (coturn's among them) still use up to
# 0x7FFF, and the first two bits (01) tell ChannelData from STUN either way, so both are accepted.
CHANNEL_MIN, CHANNEL_MAX = 0x4000, 0x7FFF


def is_channel_data(data: bytes) -> bool:
    return len(data) >= 4 and 0x40 <= data[0] <= 0x7F


def channel_data(channel: int, payload: bytes, *, pad: bool) -> bytes:
    """A ChannelData message; over TCP (pad=True) it is padded to a multiple of four bytes."""
    frame = struct.pack("!HH", channel, len(payload)) + payload
    return frame + b"\x00" * (-len(payload) % 4) if pad else frame


def parse_channel_data(data: bytes) -> tuple[int, bytes]:
    channel, length = struct.unpack_from("!HH", data)
    if 4 + length > len(data):
        raise StunParseError("ChannelData shorter than its length")
    return channel, data[4:4 + length]


def frame_length(head: bytes) -> int:
    """The full length on a TCP stream of the STUN message or ChannelData whose first 4 bytes are `head`."""
    first, length = struct.unpack("!HH", head)
    if first >= 0x4000:
        return 4 + length + (-length % 4)
    return HEADER_SIZE + length
