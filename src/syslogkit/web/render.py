"""Records and aggregates -> the JSON the page reads.

Decisions:

- Everything a sender controls goes out as JSON strings; the page puts them into the document
  as text (`textContent`), never as HTML. Nothing here escapes for HTML, on purpose: escaping is
  the page's job at the one place it writes the DOM, and JSON carries the text unchanged.
- The raw bytes go out escaped (`\\xNN` for what is not printable ASCII, `\\\\` for a
  backslash), so a frame with terminal escapes or invalid UTF-8 reads exactly; a parse error's
  column is split out so the page can mark the byte it points at.
- A histogram's bucket is a "nice" step (1 s .. 1 d) giving at most `MAX_BUCKETS` bars.
- Senders choose their timestamps: a message whose time is more than `SKEW_MARK` seconds from
  when it was received carries `skew` (received minus time, in seconds; else null), so the
  page can mark it.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

from syslogkit.collector import Record, record_to_dict
from syslogkit.collector.record import message_time as record_time

from .source import Histogram

__all__ = [
    "MAX_BUCKETS",
    "SKEW_MARK",
    "bucket_step",
    "detail",
    "escape_bytes",
    "histogram",
    "skew",
    "summary",
]

MAX_BUCKETS = 120
_STEPS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
_COLUMN = re.compile(r"\(column (\d+)\)")
#: the longest MSG a row of the list carries; the detail view has all of it
SUMMARY_MSG = 2000
#: a timestamp further than this from the arrival (seconds) is marked as clock skew
SKEW_MARK = 300.0


def message_time(record: Record) -> float:
    """What the store calls a message's time (`collector.record.message_time`)."""
    return record_time(record.message, record.received_at)


def skew(record: Record) -> float | None:
    """Seconds from the message's time to its arrival when more than `SKEW_MARK`, else None."""
    off = record.received_at - message_time(record)
    return off if abs(off) > SKEW_MARK else None


def summary(record: Record) -> dict[str, Any]:
    """One row of the result list."""
    m = record.message
    msg = (m.msg if m is not None else None) or ""
    if m is None:
        msg = record.raw.decode("utf-8", "replace")
    return {
        "id": record.id,
        "time": message_time(record),
        "received_at": record.received_at,
        "skew": skew(record),
        "severity": None if m is None or m.severity is None else int(m.severity),
        "facility": None if m is None or m.facility is None else int(m.facility),
        "hostname": None if m is None else m.hostname,
        "app_name": None if m is None else m.app_name,
        "procid": None if m is None else m.procid,
        "msg": msg[:SUMMARY_MSG],
        "truncated": len(msg) > SUMMARY_MSG,
        "transport": record.transport,
        "error": record.error is not None,
    }


def escape_bytes(data: bytes) -> str:
    """Bytes as readable ASCII text: printable ASCII as is, `\\` doubled, the rest `\\xNN`."""
    out = []
    for byte in data:
        if byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def detail(record: Record) -> dict[str, Any]:
    """The whole record: every field (`record_to_dict`), the raw bytes escaped, and where the
    parse error points (`raw_marked`: the escaped bytes before, at and after its column)."""
    out = record_to_dict(record)
    out["time"] = message_time(record)
    out["skew"] = skew(record)
    out["raw_escaped"] = escape_bytes(record.raw)
    match = _COLUMN.search(record.error or "")
    if match:
        column = int(match[1])
        if 1 <= column <= len(record.raw) + 1:
            at = column - 1
            out["error_column"] = column
            out["raw_marked"] = [
                escape_bytes(record.raw[:at]),
                escape_bytes(record.raw[at : at + 1]),
                escape_bytes(record.raw[at + 1 :]),
            ]
    return out


def bucket_step(since: float, until: float) -> float:
    """The smallest nice step giving at most `MAX_BUCKETS` buckets over [since, until)."""
    span = max(until - since, 1.0)
    for step in _STEPS:
        if span / step <= MAX_BUCKETS:
            return float(step)
    return float(86400 * math.ceil(span / 86400 / MAX_BUCKETS))


def histogram(h: Histogram) -> dict[str, Any]:
    return {
        "start": h.start,
        "step": h.step,
        "buckets": h.buckets,
        "times": [h.start + i * h.step for i in range(h.buckets)],
        "series": {str(severity): counts for severity, counts in sorted(h.counts.items())},
        "total": h.total,
    }


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()
