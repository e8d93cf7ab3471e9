"""The hot path from a frame to the store's row, without a `SyslogMessage` in between.

Two shapes cover most traffic and are read here with one regex each, straight into the values
of a row (`store.schema.make_row`'s layout):

- well-formed RFC 5424 (the strict grammar's regex of `codec.rfc5424`, PRI required): the
  structured data is kept as its RFC 5424 text (validated by the regex, parsed when read);
- BSD with an RFC 3339 timestamp without an offset and a `TAG[PID]:` (loggen's default, rsyslog's
  traditional forwarding with high-precision stamps): parsed as the lenient RFC 3164 parser reads
  it, with the note the strict parser gives ("RFC 3339 timestamp without a UTC offset").

`fast_row` returns None for anything else (or anything doubtful: a non-UTF-8 byte, an impossible
date, a BOM, more spaces than one, SD after a BSD TAG); `decode.parse_frame` then parses it as
before. The rule that keeps the two paths one: for every frame it accepts, the row equals
`make_row` of the record the general path builds (tests/collector/test_collector_fastpath.py
checks it over a corpus of shapes and near-misses).

A timestamp costs one dict lookup: its text up to the second and its offset (or zone) are
remembered with their epoch second and ISO text; only the fraction is read per message.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from typing import Any, Final

from syslogkit.codec._rfc3339 import fromisoformat
from syslogkit.codec.message import LIMITS
from syslogkit.codec.rfc5424.grammar import NAME_RE, VALUE_RE

from .record import NULL  # NULL in a row: one definition, there

__all__ = ["NULL", "fast_row"]

_SECFRAC: Final = LIMITS["secfrac_digits"]
_PRI_MAX: Final = LIMITS["pri_max"]
_VERSION_MAX: Final = LIMITS["version_max"]

_PARAM: Final = " " + NAME_RE + '="' + VALUE_RE + '"'
#: RFC 5424, strict: PRI VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD, as `codec.rfc5424`'s
#: fast regex (the timestamp split into its second, its fraction and its offset)
_R5424: Final = re.compile(
    r"<([0-9]{1,3})>([1-9][0-9]{0,2}) (?:-|("
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])(?:\.([0-9]{1,"
    + str(_SECFRAC)
    + r"}))?(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]))"
    + "".join(
        f" (?:-|([!-~]{{1,{LIMITS[name]}}}))"
        for name in ("hostname", "app_name", "procid", "msgid")
    )
    + r" (?:-|((?:\["
    + NAME_RE
    + "(?:"
    + _PARAM
    + r")*+\])++))(?: (.*))?",
    re.S | re.A,
).fullmatch
#: PRIVAL text (0..191, no leading zero) -> (facility, severity); VERSION text -> int
_PRI: Final = {str(value): (value >> 3, value & 7) for value in range(_PRI_MAX + 1)}
_VERSIONS: Final = {str(value): value for value in range(1, _VERSION_MAX + 1)}
_SD_IDS: Final = re.compile(r"\[(" + NAME_RE + ")|" + _PARAM, re.S | re.A)
#: BSD: <PRI>YYYY-MM-DDTHH:MM:SS[.fff] HOST TAG[PID]: (no offset: the lenient reading)
_BSD: Final = re.compile(
    rb"<([1-9][0-9]{0,2}|0)>([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})"
    rb"(?:\.([0-9]{1,6}))? ([^ \[:]+) ([^ \[:]+)(?:\[([^\] ]*)\])?: *"
)
_BSD_NOTE: Final = "RFC 3339 timestamp without a UTC offset (column {})"
_BOM_TEXT: Final = "\ufeff"
_BOM: Final = b"\xef\xbb\xbf"

#: (second text, offset text or zone) -> (epoch second, ISO text up to the second, ISO offset)
_seconds: dict[tuple[str, Any], tuple[int, str, str]] = {}


def _second(text: str, zone: Any) -> tuple[int, str, str] | None:
    """The epoch second and ISO parts of `text` (to the second) in `zone` (an offset text or a
    tzinfo), remembered; None for a date the calendar lacks."""
    found = _seconds.get((text, zone))
    if found is not None:
        return found
    try:
        if isinstance(zone, str):
            moment = fromisoformat(text + zone)
        else:
            moment = datetime.fromisoformat(text).replace(tzinfo=zone)
        epoch = moment.timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    iso = moment.isoformat()
    found = (int(epoch), iso[:19], iso[19:])
    if len(_seconds) >= 4096:
        _seconds.clear()
    _seconds[text, zone] = found
    return found


def _stamp(second: tuple[int, str, str], fraction: str | None) -> tuple[float, str]:
    """(time, ISO text) as `SyslogMessage.timestamp` gives them: `timestamp()` and
    `isoformat()` (microseconds cut, never rounded; none shown when zero)."""
    base, head, tail = second
    if not fraction:
        return float(base), head + tail
    if len(fraction) != 6:
        fraction = fraction[:6].ljust(6, "0")
    us = int(fraction)
    if not us:
        return float(base), head + tail
    return (base * 1_000_000 + us) / 1_000_000, head + "." + fraction + tail


def _unique_ids(sd: str) -> bool:
    ids = [found for found in _SD_IDS.findall(sd) if found]
    return len(ids) == len(set(ids))


def row_5424(
    raw: bytes, text: str, received_at: float, tail: tuple[Any, ...]
) -> tuple[Any, ...] | None:
    """The row of well-formed RFC 5424, else None."""
    m = _R5424(text)
    if m is None:
        return None
    pri, version, second, fraction, offset, hostname, app_name, procid, msgid, sd, msg = m.groups()
    found = _PRI.get(pri)
    if found is None:
        return None
    bom = 0
    if not msg:
        msg = NULL
    elif msg[0] == _BOM_TEXT:
        msg = msg[1:]
        bom = 1
    if second is None:
        when: Any = received_at
        iso: Any = NULL
    else:
        parts = _seconds.get((second, offset)) or _second(second, offset)
        if parts is None:
            return None
        base, head, zone = parts
        if fraction is None:
            when, iso = float(base), head + zone
        else:
            if len(fraction) != 6:
                fraction = fraction.ljust(6, "0")
            us = int(fraction)
            if us:
                when, iso = (base * 1_000_000 + us) / 1_000_000, head + "." + fraction + zone
            else:
                when, iso = float(base), head + zone
    if sd is None:
        sd = NULL
    elif "][" in sd and not _unique_ids(sd):
        return None
    return (
        received_at,
        when,
        iso,
        found[0],
        found[1],
        _VERSIONS[version],
        NULL if hostname is None else hostname,
        NULL if app_name is None else app_name,
        NULL if procid is None else procid,
        NULL if msgid is None else msgid,
        sd,
        msg,
        NULL,
        bom,
        raw,
        NULL,
        *tail,
    )


def row_bsd(
    raw: bytes, zone: tzinfo, received_at: float, tail: tuple[Any, ...]
) -> tuple[Any, ...] | None:
    """The row of BSD with an offset-less RFC 3339 timestamp and a TAG, else None."""
    m = _BSD.match(raw)
    if m is None:
        return None
    pri, second, fraction, hostname, app_name, procid = m.groups()
    value = int(pri)
    end = m.end()
    if value > _PRI_MAX or raw[end : end + 1] == b"[" or raw.startswith(_BOM, end):
        return None
    try:
        host = hostname.decode()
        app = app_name.decode()
        pid = procid.decode() if procid else NULL
        msg = raw[end:].decode()
    except UnicodeDecodeError:
        return None
    parts = _second(second.decode(), zone)
    if parts is None:
        return None
    when, iso = _stamp(parts, fraction.decode() if fraction else None)
    note = _BSD_NOTE.format((m.end(3) if fraction else m.end(2)) + 1)
    return (received_at, when, iso, value >> 3, value & 7, NULL, host, app, pid, NULL, NULL, msg,
            NULL, 0, raw, note, *tail)  # fmt: skip


def fast_row(
    raw: bytes, zone: tzinfo, received_at: float, tail: tuple[Any, ...]
) -> tuple[Any, ...] | None:
    """The store's row of a frame in one of the two shapes, else None. `zone` reads an
    offset-less timestamp; `tail` holds the row's last columns (transport, peer, listener,
    tls_subject, tls_fingerprint, extra). A frame that is not valid UTF-8 is left to the
    general path."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    row = row_5424(raw, text, received_at, tail)
    if row is None:  # the BSD shape cannot be RFC 5424 (`<PRI>YYYY-` has no VERSION SP)
        return row_bsd(raw, zone, received_at, tail)
    return row
