"""XEP-0082 date-times: the one place that writes and reads them (the caller passes the time in)."""

from __future__ import annotations

import datetime

__all__ = ["format_datetime", "parse_datetime"]


def format_datetime(seconds: float, *, milliseconds: bool = True) -> str:
    """POSIX time as an XEP-0082 DateTime in UTC: "2026-12-05T22:41:07.123Z" (or without the fraction)."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    if not milliseconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_datetime(text: str) -> float:
    """An XEP-0082 DateTime (with a time zone) as POSIX time; ValueError says what is wrong with it."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"Not an XEP-0082 date-time: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"The date-time {text!r} needs a time zone")
    return moment.timestamp()
