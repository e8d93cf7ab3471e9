"""RFC 3339 timestamps as RFC 5424 §6.2.3 restricts them: text out, aware datetimes in.

Shared by the RFC 5424 codec and anyone who reads an RFC 3339 stamp (an RFC 3164 header, say).
Sans-I/O: no clock, no local time zone. A naive datetime is taken as UTC, never as local time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Final

__all__ = [
    "TimestampError",
    "describe_byte",
    "format_timestamp",
    "fromisoformat",
    "scan_timestamp",
    "timestamp_parts",
    "tz_for_minutes",
]

_ZERO: Final = timedelta(0)
_UTC: Final = timezone.utc
_TZ_CACHE: dict[int, timezone] = {0: _UTC}


def tz_for_minutes(minutes: int) -> timezone:
    """The timezone for a UTC offset in minutes, one shared object per offset (|offset| < 24 h)."""
    zone = _TZ_CACHE.get(minutes)
    if zone is None:
        zone = _TZ_CACHE[minutes] = timezone(timedelta(minutes=minutes))
    return zone


def _format_slow(dt: datetime) -> tuple[str, bool]:
    """The text, and whether its parts around the microseconds hold for the whole second."""
    offset = dt.utcoffset()
    if offset is None:
        return dt.isoformat(timespec="microseconds") + "Z", True
    if offset == _ZERO:
        return dt.isoformat(timespec="microseconds")[:-6] + "Z", True
    if offset.seconds % 60 or offset.microseconds:
        try:
            text = dt.astimezone(_UTC).isoformat(timespec="microseconds")[:-6] + "Z"
            return text, not offset.microseconds
        except OverflowError:  # a moment at the edge of year 1 / 9999: keep the wall clock
            minutes = int(offset.total_seconds() // 60)
            dt = dt.replace(tzinfo=tz_for_minutes(minutes))
    return dt.isoformat(timespec="microseconds"), True


#: (wall-clock second, tzinfo, fold) -> the text before and after the 6 fraction digits.
_SECONDS: dict[tuple[object, ...], tuple[str, str]] = {}
_SECONDS_MAX: Final = 512


def timestamp_parts(dt: datetime) -> tuple[str, str] | None:
    """The text `format_timestamp` writes for every moment of `dt`'s second, split around the
    six fraction digits: (before, after). None when the microseconds change more than those
    digits (an offset with microseconds, converted to UTC)."""
    text, whole_second = _format_slow(dt.replace(microsecond=0))
    return (text[:20], text[26:]) if whole_second else None


def format_timestamp(dt: datetime | None) -> str:
    """RFC 3339 text for RFC 5424: always 6 fraction digits, the datetime's real UTC offset.

    `None` gives the NILVALUE `-`. A zero offset is written `Z`; a naive datetime is taken as UTC
    (reading the local zone would be an environment read). An offset with seconds (historic
    local mean time) cannot be written in RFC 3339, so such a moment is converted to UTC.
    The text around the microseconds is made once per second and zone (`isoformat` is slow).
    """
    if dt is None:
        return "-"
    key = (dt.second, dt.minute, dt.hour, dt.day, dt.month, dt.year, dt.tzinfo, dt.fold)
    try:
        parts = _SECONDS.get(key)
    except TypeError:  # a tzinfo that cannot be hashed
        return _format_slow(dt)[0]
    if parts is None:
        parts = timestamp_parts(dt)
        if parts is None:  # an offset with microseconds moved them: no caching
            return _format_slow(dt)[0]
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        _SECONDS[key] = parts
    return parts[0] + "%06d" % dt.microsecond + parts[1]  # noqa: UP031


def _fromisoformat_compat(text: str) -> datetime:
    """`datetime.fromisoformat` for Python 3.10, which knows neither `Z` nor 1..6-digit fractions.

    Only called on text that already follows the RFC 5424 grammar (or its naive date-time part).
    """
    if text[-1:] == "Z":
        text = text[:-1] + "+00:00"
    dot = text.find(".")
    if dot > 0:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[: dot + 1] + text[dot + 1 : end].ljust(6, "0")[:6] + text[end:]
    return datetime.fromisoformat(text)


#: Text that follows the RFC 5424 TIMESTAMP grammar -> aware datetime (ValueError for a date
#: the calendar lacks, or year 0).
fromisoformat: Final[Callable[[str], datetime]] = (
    datetime.fromisoformat if sys.version_info >= (3, 11) else _fromisoformat_compat
)


class TimestampError(ValueError):
    """A timestamp that does not follow the grammar; `index` is the 0-based offset of the fault."""

    def __init__(self, reason: str, index: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index


_DIGITS: Final = b"0123456789"


def describe_byte(buf: bytes, i: int) -> str:
    """A person-readable name for the byte at `i` (or the end of input), for parse errors."""
    if i >= len(buf):
        return "end of input"
    c = buf[i]
    if c == 0x20:
        return "SP"
    if c == 0x0A:
        return "LF"
    if 0x21 <= c <= 0x7E:
        return repr(chr(c))
    return f"byte 0x{c:02X}"


def _digit(buf: bytes, i: int, allowed: bytes, what: str) -> int:
    if i >= len(buf) or buf[i] not in allowed:
        raise TimestampError(f"expected {what} in TIMESTAMP, found {describe_byte(buf, i)}", i)
    return buf[i] - 48


def _char(buf: bytes, i: int, allowed: bytes, what: str) -> None:
    if i >= len(buf) or buf[i] not in allowed:
        raise TimestampError(f"expected {what} in TIMESTAMP, found {describe_byte(buf, i)}", i)


def scan_timestamp(buf: bytes, pos: int, *, lenient: bool = False) -> tuple[datetime, int]:
    """Read an RFC 5424 TIMESTAMP (not the NILVALUE) at `buf[pos:]`: (datetime, end index).

    Strict: `FULL-DATE "T" FULL-TIME`, upper-case `T`/`Z`, TIME-SECFRAC of 1..6 digits, no leap
    second, a date the calendar has, every two-digit field in range; the error names the first
    byte at fault. Lenient also takes lower-case `t`/`z` and more than 6 fraction digits
    (truncated to microseconds). Raises TimestampError.
    """
    i = pos
    year = 0
    for k in range(4):
        year = year * 10 + _digit(buf, i + k, _DIGITS, "a DATE-FULLYEAR digit")
    i += 4
    _char(buf, i, b"-", "'-' after the year")
    tens = _digit(buf, i + 1, b"01", "a DATE-MONTH digit (01-12)")
    month = tens * 10 + _digit(
        buf, i + 2, b"123456789" if tens == 0 else b"012", "a DATE-MONTH digit (01-12)"
    )
    i += 3
    _char(buf, i, b"-", "'-' after the month")
    tens = _digit(buf, i + 1, b"0123", "a DATE-MDAY digit (01-31)")
    day = tens * 10 + _digit(
        buf,
        i + 2,
        b"123456789" if tens == 0 else (b"01" if tens == 3 else _DIGITS),
        "a DATE-MDAY digit (01-31)",
    )
    i += 3
    if i < len(buf) and buf[i] == 0x74 and not lenient:  # 't'
        raise TimestampError("'T' must be upper case in TIMESTAMP (RFC 5424 §6.2.3)", i)
    _char(buf, i, b"Tt" if lenient else b"T", "'T' between date and time")
    tens = _digit(buf, i + 1, b"012", "a TIME-HOUR digit (00-23)")
    hour = tens * 10 + _digit(
        buf, i + 2, b"0123" if tens == 2 else _DIGITS, "a TIME-HOUR digit (00-23)"
    )
    i += 3
    _char(buf, i, b":", "':' after the hour")
    minute = _digit(buf, i + 1, b"012345", "a TIME-MINUTE digit (00-59)") * 10
    minute += _digit(buf, i + 2, _DIGITS, "a TIME-MINUTE digit (00-59)")
    i += 3
    _char(buf, i, b":", "':' after the minute")
    if buf[i + 1 : i + 3] == b"60":
        raise TimestampError("TIME-SECOND 60 (leap second) is not allowed (RFC 5424 §6.2.3)", i + 1)
    second = _digit(buf, i + 1, b"012345", "a TIME-SECOND digit (00-59)") * 10
    second += _digit(buf, i + 2, _DIGITS, "a TIME-SECOND digit (00-59)")
    i += 3
    micro = 0
    if i < len(buf) and buf[i] == 0x2E:  # '.'
        i += 1
        start = i
        while i < len(buf) and buf[i] in _DIGITS:
            if i - start == 6 and not lenient:
                raise TimestampError("TIME-SECFRAC has more than 6 digits (RFC 5424 §6.2.3)", i)
            i += 1
        if i == start:
            raise TimestampError(
                f"expected a TIME-SECFRAC digit after '.', found {describe_byte(buf, i)}", i
            )
        micro = int(buf[start : min(i, start + 6)].ljust(6, b"0"))
    if i >= len(buf):
        raise TimestampError("TIMESTAMP ends before its TIME-OFFSET ('Z' or +hh:mm)", i)
    c = buf[i]
    if c == 0x5A or (c == 0x7A and lenient):  # 'Z' / 'z'
        zone = _UTC
        i += 1
    elif c == 0x2B or c == 0x2D:  # '+' / '-'
        tens = _digit(buf, i + 1, b"012", "a TIME-OFFSET hour digit (00-23)")
        hours = tens * 10 + _digit(
            buf, i + 2, b"0123" if tens == 2 else _DIGITS, "a TIME-OFFSET hour digit (00-23)"
        )
        _char(buf, i + 3, b":", "':' in TIME-OFFSET")
        minutes = _digit(buf, i + 4, b"012345", "a TIME-OFFSET minute digit (00-59)") * 10
        minutes += _digit(buf, i + 5, _DIGITS, "a TIME-OFFSET minute digit (00-59)")
        total = hours * 60 + minutes
        zone = tz_for_minutes(-total if c == 0x2D else total)
        i += 6
    elif c == 0x7A:
        raise TimestampError("'Z' must be upper case in TIMESTAMP (RFC 5424 §6.2.3)", i)
    else:
        raise TimestampError(
            f"expected TIME-OFFSET ('Z', '+hh:mm' or '-hh:mm'), found {describe_byte(buf, i)}", i
        )
    if year == 0:
        raise TimestampError(
            "year 0000 follows the grammar but Python's datetime cannot hold it (years 1-9999)",
            pos,
        )
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, zone)
    except ValueError as exc:
        raise TimestampError(f"TIMESTAMP is not a calendar date: {exc}", i) from None
    return moment, i
