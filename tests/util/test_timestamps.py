"""XEP-0082 date-times written and read in one place (and a request's bad one answered bad-request)."""

from __future__ import annotations

import pytest

from appliance.modules._util import parse_stamp
from appliance.util.timestamps import format_datetime, parse_datetime
from appliance.xmpp.errors import StanzaError


def test_format_is_utc_with_milliseconds_or_without() -> None:
    assert format_datetime(1_700_000_000.1239) == "2023-11-14T22:13:20.123Z"
    assert format_datetime(1_700_000_000.1239, milliseconds=False) == "2023-11-14T22:13:20Z"
    assert format_datetime(0) == "1970-01-01T00:00:00.000Z"


def test_parse_reads_what_format_writes_and_other_offsets() -> None:
    assert parse_datetime(format_datetime(1_700_000_000.5)) == 1_700_000_000.5
    assert parse_datetime("2023-11-14T23:13:20+01:00") == 1_700_000_000.0


@pytest.mark.parametrize("text", ["yesterday", "2023-11-14T22:13:20"])
def test_parse_refuses_garbage_and_missing_zone(text: str) -> None:
    with pytest.raises(ValueError, match=r"XEP-0082 date-time|needs a time zone"):
        parse_datetime(text)
    with pytest.raises(StanzaError) as info:
        parse_stamp(text)
    assert info.value.condition == "bad-request"
