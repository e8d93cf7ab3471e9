"""RFC 3164 formatting: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG` (see the package for
the decisions). Sans-I/O."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Final

from syslogkit.codec.message import LIMITS, Facility, Severity, SyslogMessage
from syslogkit.codec.text import cut_utf8

__all__ = ["MONTH_ABBR", "TAG_MAX", "format_3164", "sanitize_hostname", "sanitize_tag"]

#: RFC 3164 §4.1.3: the TAG "MUST NOT exceed 32 characters".
TAG_MAX: Final = 32

#: The month names of a BSD timestamp.
MONTH_ABBR: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip


def _ascii_visible(value: str, forbidden: str) -> str:
    """`value` with only ASCII VCHAR (33..126) characters that are not in `forbidden`."""
    return "".join(c for c in value if "!" <= c <= "~" and c not in forbidden)


@functools.lru_cache(maxsize=256)
def sanitize_tag(value: str | None) -> str:
    """TAG as sent: ASCII visible characters without `[`, `]`, `:`; at most 32 (§4.1.3)."""
    if not value:
        return ""
    return _ascii_visible(value, "[]:")[:TAG_MAX]


@functools.lru_cache(maxsize=256)
def sanitize_hostname(value: str | None) -> str:
    """HOSTNAME as sent: ASCII visible characters (RFC 3164 §4.1.2), no spaces.

    `[` and `]` are dropped and trailing `:` stripped, so that a receiver never mistakes the
    HOSTNAME for a TAG. Dots are kept (no domain stripping: that is the sender's choice).
    """
    if not value:
        return ""
    return _ascii_visible(value, "[]").rstrip(":")


@functools.lru_cache(maxsize=256)
def _sanitize_procid(value: str | None) -> str:
    if not value:
        return ""
    return _ascii_visible(value, "[]")[: LIMITS["procid"]]


def _bsd_timestamp(ts: datetime) -> str:
    """`Mmm dd hh:mm:ss` in the datetime's own zone (a naive datetime as it is)."""
    return f"{MONTH_ABBR[ts.month - 1]} {ts.day:2d} {ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"


def format_3164(
    msg: SyslogMessage,
    omit_hostname: bool = False,
    *,
    max_size: int | None = None,
    report: dict[str, int] | None = None,
) -> bytes:
    """Encode `msg` as `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[pid]: MSG`.

    - A missing facility or severity is written as RFC 3164's default (user, notice: PRI 13,
      §4.3.3), since a PRI is required on the wire.
    - `omit_hostname=True` leaves HOSTNAME out (the local `/dev/log` form glibc writes).
    - Without a timestamp, TIMESTAMP and HOSTNAME are both left out (`<PRI>TAG: MSG`, the form of
      a device without a clock; a relay adds them, §4.3.2): a HOSTNAME is only recognisable after
      a TIMESTAMP. Without a hostname, HOSTNAME is left out.
    - TAG is `app_name` sanitised (see `sanitize_tag`), `[pid]` only with a TAG; no TAG without
      an `app_name`. Structured data has no place in RFC 3164 and is not written.
    - MSG is written as UTF-8, unchanged.
    - `max_size` limits the encoded size in bytes; the message is cut at the end (MSG first)
      and never inside a UTF-8 sequence. When it cuts, `report["truncated"]` is incremented.
    """
    facility = Facility.USER if msg.facility is None else msg.facility
    severity = Severity.NOTICE if msg.severity is None else msg.severity
    parts = [f"<{(int(facility) << 3) | int(severity)}>"]
    if msg.timestamp is not None:
        parts.append(_bsd_timestamp(msg.timestamp))
        parts.append(" ")
        if not omit_hostname:
            host = sanitize_hostname(msg.hostname)
            if host:
                parts.append(host)
                parts.append(" ")
    tag = sanitize_tag(msg.app_name)
    if tag:
        pid = _sanitize_procid(msg.procid)
        parts.append(f"{tag}[{pid}]:" if pid else f"{tag}:")
        if msg.msg is not None:
            parts.append(" ")
    if msg.msg is not None:
        parts.append(msg.msg)
    out = "".join(parts).encode("utf-8", "replace")
    if max_size is not None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        if len(out) > max_size:
            out = cut_utf8(out, max_size)  # never inside a UTF-8 sequence
            if report is not None:
                report["truncated"] = report.get("truncated", 0) + 1
    return out
