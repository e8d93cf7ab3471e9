"""RFC 3164 parsing: the variants real senders produce (see the package for the decisions).

One cohesive parser over about 500 lines: the one-regex fast path for the common shape, and the
general parser (PRI, BSD or RFC 3339 timestamp, HOSTNAME, Cisco prefixes, TAG, structured data)
whose steps share one `_Result` and the mode rules; split further, each part would need the
others' state. The one clock read is `default_reference()`.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from syslogkit.codec._rfc3339 import TimestampError, fromisoformat, scan_timestamp
from syslogkit.codec.message import (
    Facility,
    ParseError,
    SDElement,
    Severity,
    SyslogMessage,
    build_message,
    facility_of,
    severity_of,
)
from syslogkit.codec.rfc3164.formatting import MONTH_ABBR

__all__ = ["CISCO_COMPONENTS", "default_reference", "parse_3164"]

#: Cisco IOS prefix parts that `cisco=` can switch off (`"no-counter|no-sequence"`, ...).
CISCO_COMPONENTS: Final = ("counter", "sequence", "hostname")

_MODES: Final = frozenset({"strict", "best_effort", "lenient"})
_MONTH_NUMBER: Final = {name.lower().encode(): i + 1 for i, name in enumerate(MONTH_ABBR)}
_MONTH_TITLE: Final = {name.encode(): i + 1 for i, name in enumerate(MONTH_ABBR)}
#: b"00".."99" and b" 0".." 9" -> int (cheaper than int(bytes) on the fast path).
_TWO_DIGITS: Final = {b"%02d" % i: i for i in range(100)} | {b" %d" % i: i for i in range(10)}
_BOM: Final = b"\xef\xbb\xbf"
_SP: Final = 0x20
_FACILITY_OF: Final = tuple(Facility)
_SEVERITY_OF: Final = tuple(Severity)
_COLON: Final = 0x3A

_PRI: Final = re.compile(rb"<(\d{1,3})>")
# The common well-formed shape in one match: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[pid]: `. What it
# reads is what the general parser reads; anything it does not vouch for goes to that parser.
_FAST: Final = re.compile(
    rb"<(\d{1,3})>([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) "
    rb"([^ \[:]+) ([^ \[:]+)(?:\[([^\] ]*)\])?: ?"
)
# Mmm dd [yyyy] hh:mm:ss[.fff]: month in any case, day padded by a space or not (or zero).
_BSD_TS: Final = re.compile(
    rb"([A-Za-z]{3}) +(\d{1,2}) +(?:(\d{4}) +)?(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
)
# The shape of an RFC 3339 timestamp (its value is read by `_rfc3339.scan_timestamp`); the
# offset group is empty when a sender left the offset out.
_RFC3339_TS: Final = re.compile(
    rb"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?"
)
# TAG: name, optional [pid], optional colon (which of them make a TAG is decided in code).
_TAG: Final = re.compile(rb"([^ \[:]*)(?:\[([^\] ]*)\])?(:?)")
_CISCO_COUNTER: Final = re.compile(rb"(\d{0,18}):(?: |\Z)")
_CISCO_NUMBER: Final = re.compile(rb"(\d{1,18}):(?: |\Z)")
_CISCO_HOST: Final = re.compile(rb"([^ ]+?):(?: |\Z)")
# RFC 5424 §6.3 SD-NAME / PARAM-VALUE, and §6.3.2 SD-ID validity.
_SD_NAME: Final = re.compile(rb"[!#-<>-\\^-~]{1,32}")
_SD_VALUE: Final = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_SD_ID_PRIVATE: Final = re.compile(r"[^@]+@\d+(?:\.\d+)*")
_SD_ID_REGISTERED: Final = frozenset({"timeQuality", "origin", "meta"})
_SD_UNESCAPE: Final = re.compile(r'\\(["\\\]])')


def default_reference() -> datetime:
    """Now, in the local zone: where a BSD timestamp gets its year and zone by default.

    The only clock read of this module; `parse_3164(..., reference=...)` bypasses it.
    (What `datetime.now().astimezone()` gives, at half its cost.)
    """
    now = time.time()
    local = time.localtime(now)
    return datetime.fromtimestamp(now, _local_zone(local.tm_gmtoff, local.tm_zone))


@functools.lru_cache(maxsize=8)
def _local_zone(offset: int, name: str) -> timezone:
    return timezone(timedelta(seconds=offset), name)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


@functools.lru_cache(maxsize=64)
def _cisco_components(cisco: bool | str) -> frozenset[str]:
    """The Cisco prefix parts a device sends, from the `cisco` option."""
    if cisco is True:
        return frozenset(CISCO_COMPONENTS)
    if not isinstance(cisco, str):
        raise TypeError(f"cisco must be a bool or a str, not {type(cisco).__name__}")
    parts = set(CISCO_COMPONENTS)
    for word in re.split(r"[|,\s]+", cisco.strip().lower()):
        if word in ("", "all"):
            continue
        name = word.removeprefix("no-")
        if not word.startswith("no-") or name not in CISCO_COMPONENTS:
            raise ValueError(
                f"unknown cisco option {word!r}: use True, 'all', or any of "
                "'no-counter', 'no-sequence', 'no-hostname' joined by '|'"
            )
        parts.discard(name)
    return frozenset(parts)


def _fraction(digits: bytes | None) -> int:
    """Microseconds from the digits after the decimal point (cut, never rounded)."""
    if not digits:
        return 0
    return int(digits[:6].ljust(6, b"0"))


def _pri_fault(raw: bytes) -> tuple[str, int]:
    """Reason and 0-based position of the fault in a PRI that starts with `<`."""
    i = 1
    while i < len(raw) and i <= 4 and 0x30 <= raw[i] <= 0x39:
        i += 1
    digits = raw[1:i]
    if not digits:
        return "expected a PRI value (digits) after '<'", 1
    if len(digits) > 3:
        return "PRI value longer than 3 digits", 4
    if i >= len(raw) or raw[i] != ord(">"):
        return "expected '>' to close the PRI", i
    if len(digits) > 1 and digits[0] == 0x30:
        return "PRI value with a leading zero (unidentifiable PRI, RFC 3164 §4.3.3)", 1
    return f"PRI value {int(digits)} out of range 0..191", 1


def _skip_spaces(raw: bytes, pos: int, n: int) -> int:
    while pos < n and raw[pos] == _SP:
        pos += 1
    return pos


def _parse_sd(raw: bytes, pos: int) -> tuple[tuple[SDElement, ...], int] | None:
    """RFC 5424 SD-ELEMENTs at `pos`, followed by a space or the end; else None.

    Only SD-IDs valid by RFC 5424 §6.3.2 (registered or `name@number`) count.
    """
    n = len(raw)
    elements: list[SDElement] = []
    while pos < n and raw[pos] == 0x5B:  # "["
        m = _SD_NAME.match(raw, pos + 1)
        if m is None:
            return None
        sd_id = m[0].decode("ascii")
        if sd_id not in _SD_ID_REGISTERED and _SD_ID_PRIVATE.fullmatch(sd_id) is None:
            return None
        pos = m.end()
        params: list[tuple[str, str]] = []
        while pos < n and raw[pos] == _SP:
            name = _SD_NAME.match(raw, pos + 1)
            if name is None or raw[name.end() : name.end() + 1] != b"=":
                return None
            value = _SD_VALUE.match(raw, name.end() + 1)
            if value is None:
                return None
            text = _decode(value[1])
            if "\\" in text:
                text = _SD_UNESCAPE.sub(r"\1", text)
            params.append((name[0].decode("ascii"), text))
            pos = value.end()
        if raw[pos : pos + 1] != b"]":
            return None
        pos += 1
        elements.append(SDElement(sd_id, tuple(params)))
    if not elements or (pos < n and raw[pos] != _SP):
        return None
    return tuple(elements), pos


def _resolve_year(month: int, reference: datetime) -> int:
    """The year of a BSD timestamp's month, seen from `reference` (Dec/Jan rollover)."""
    year = reference.year
    if month == 12 and reference.month == 1:
        return year - 1  # a December message received in January: last year's
    if month == 1 and reference.month == 12:
        return year + 1  # a January message with a December reference: next year's
    return year


class _Result:
    """What has been parsed so far (to build the message or a best-effort partial)."""

    __slots__ = (
        "app_name", "extra", "facility", "hostname", "procid", "sd", "severity", "timestamp",
    )  # fmt: skip

    def __init__(self) -> None:
        self.facility: Facility | None = None
        self.severity: Severity | None = None
        self.timestamp: datetime | None = None
        self.hostname: str | None = None
        self.app_name: str | None = None
        self.procid: str | None = None
        self.sd: tuple[SDElement, ...] = ()
        self.extra: dict[str, Any] | None = None

    def message(self, raw: bytes, msg: str | None = None, bom: bool = False) -> SyslogMessage:
        """The message as parsed so far."""
        return SyslogMessage(
            facility=self.facility,
            severity=self.severity,
            version=None,
            timestamp=self.timestamp,
            hostname=self.hostname,
            app_name=self.app_name,
            procid=self.procid,
            msgid=None,
            structured_data=self.sd,
            msg=msg,
            bom=bom,
            raw=raw,
            extra=self.extra or None,
        )

    def fault(self, mode: str, reason: str, pos: int, raw: bytes) -> ParseError:
        partial = self.message(raw) if mode == "best_effort" else None
        return ParseError(reason, pos + 1, partial)


def _starts_timestamp(raw: bytes, at: int) -> bool:
    """Whether a timestamp (after an optional Cisco `*`/`.` mark) starts at `at`."""
    if raw[at : at + 1] in (b"*", b"."):
        at += 1
    m = _BSD_TS.match(raw, at)
    if m is not None and m[1].lower() in _MONTH_NUMBER:
        return True
    return _RFC3339_TS.match(raw, at) is not None


def _cisco_prefix(
    raw: bytes, pos: int, parts: frozenset[str], strict: bool, res: _Result
) -> tuple[int, tuple[str, int] | None]:
    """Parse Cisco IOS's `[counter: ][sequence: ][hostname: ][*|.]` before the timestamp.

    Every part the options allow is optional. A part the options exclude decides how an
    ambiguous number is read (`"no-counter"`: the first number is the sequence); when such a
    part is there all the same, strict mode reports it, lenient mode takes it.
    Returns the new position and a fault (reason, position) or None.
    """
    n = len(raw)
    extra: dict[str, Any] = {}
    res.extra = extra
    m = _CISCO_COUNTER.match(raw, pos)
    if m is not None and ("counter" in parts or not m[1]):
        if "counter" not in parts and strict:
            return pos, ("Cisco message counter present but the cisco option excludes it", pos)
        extra["message_counter"] = int(m[1]) if m[1] else 0
        pos = _skip_spaces(raw, m.end(), n)
    m = _CISCO_NUMBER.match(raw, pos)
    if m is not None and ("sequence" in parts or "hostname" not in parts):
        if "sequence" not in parts and strict:
            return pos, ("Cisco sequence number present but the cisco option excludes it", pos)
        extra["sequence"] = int(m[1])
        pos = _skip_spaces(raw, m.end(), n)
    m = None if _starts_timestamp(raw, pos) else _CISCO_HOST.match(raw, pos)
    if m is not None:  # an origin-id is followed by the timestamp or the "%FAC-SEV-MNEMONIC:"
        after = _skip_spaces(raw, m.end(), n)
        if raw[pos] == 0x25 or not (
            _starts_timestamp(raw, after) or raw[after : after + 1] == b"%"
        ):
            m = None
    if m is not None:
        if "hostname" not in parts and strict:
            return pos, ("Cisco origin hostname present but the cisco option excludes it", pos)
        res.hostname = _decode(m[1])
        pos = _skip_spaces(raw, m.end(), n)
    if raw[pos : pos + 1] in (b"*", b".") and _starts_timestamp(raw, pos):
        extra["ntp_unsynced"] = True
        pos += 1
    return pos, None


def _is_tag(tag: re.Match[bytes], raw: bytes) -> bool:
    """Whether a `_TAG` match is a TAG (§5.3): `name:`, `name[pid]:`, a bare `:`, or
    `name[pid]` before a space or the end."""
    name, pid, colon = tag[1], tag[2], tag[3]
    if pid is None:
        return bool(colon)
    if not name:
        return False
    end = tag.end()
    return bool(colon) or end == len(raw) or raw[end] == _SP


def _fast(raw: bytes, reference: datetime | None) -> SyslogMessage | None:
    """The message when it has the common well-formed shape (`_FAST`), else None."""
    m = _FAST.match(raw)
    if m is None:
        return None
    digits = m[1]
    value = int(digits)
    month = _MONTH_TITLE.get(m[2])
    end = m.end()
    if (
        value > 191
        or (digits[0] == 0x30 and len(digits) > 1)
        or month is None
        or (end < len(raw) and raw[end] in (_SP, 0x5B))  # more spaces, or maybe SD
        or raw.startswith(_BOM, end)
    ):
        return None
    ref = reference if reference is not None else default_reference()
    two = _TWO_DIGITS
    try:
        timestamp = datetime(
            _resolve_year(month, ref), month, two[m[3]], two[m[4]], two[m[5]], two[m[6]],
            tzinfo=ref.tzinfo,
        )  # fmt: skip
    except ValueError:
        return None
    pid = m[9]
    return build_message(
        _FACILITY_OF[value >> 3],
        _SEVERITY_OF[value & 7],
        None,
        timestamp,
        m[7].decode("utf-8", "replace"),
        m[8].decode("utf-8", "replace"),
        pid.decode("utf-8", "replace") if pid else None,
        None,
        (),
        raw[end:].decode("utf-8", "replace"),
        False,
        raw,
        None,
    )


def parse_3164(
    data: bytes | str,
    mode: str = "lenient",
    *,
    reference: datetime | None = None,
    cisco: bool | str = False,
    rfc3339: bool = True,
    optional_priority: bool = True,
) -> SyslogMessage:
    """Parse an RFC 3164 message, or one of the variants real senders produce.

    Modes:
      - `"lenient"` (default) never raises for any input: what cannot be read is left in `msg`
        (the whole input when nothing parses). An unidentifiable PRI makes the whole packet the
        MSG (RFC 3164 §4.3.3); an impossible date leaves `timestamp` None.
      - `"strict"` raises `ParseError` (1-based byte column) for an invalid PRI, a missing PRI
        (unless `optional_priority`), a missing or unreadable TIMESTAMP, an impossible date or
        time (Feb 29 of a non-leap year), a Cisco prefix the options say the device does not send.
      - `"best_effort"`: as strict, and the error's `partial` holds what parsed before the fault.

    Options:
      - `reference`: aware datetime that gives a BSD timestamp its year and zone (Dec/Jan
        rollover); default `default_reference()` (now, local zone).
      - `rfc3339`: accept an RFC 3339 timestamp in place of the BSD one (rsyslog's forward
        format, ESXi).
      - `optional_priority`: a message without `<PRI>` is accepted (facility and severity None,
        never defaulted). Only strict and best-effort modes reject it when this is False.
      - `cisco`: Cisco IOS prefixes `counter: [sequence: ][origin-hostname: ][*|.]Mmm dd
        hh:mm:ss[.mmm]: `. `True` (or `"all"`) accepts every part; a string such as
        `"no-sequence|no-hostname"` says which parts the device does not send (go-syslog's
        `ciscoios.Disable*` flags), which decides what a bare number is; in strict mode a part
        the device should not send is an error. Found values go to `extra`: `message_counter`
        (int; an empty counter `": "` is 0, as go-syslog reports it), `sequence` (int) and
        `ntp_unsynced` (True after a `*` or `.` mark); the origin hostname is `hostname`.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be 'strict', 'best_effort' or 'lenient', not {mode!r}")
    if reference is not None and reference.utcoffset() is None:
        raise ValueError("reference must be an aware datetime")
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if cisco is False and (fast := _fast(raw, reference)) is not None:
        return fast
    return _parse(raw, mode, reference, cisco, rfc3339, optional_priority)


def _parse(
    raw: bytes,
    mode: str,
    reference: datetime | None,
    cisco: bool | str,
    rfc3339: bool,
    optional_priority: bool,
) -> SyslogMessage:
    """The general parser behind `parse_3164` (all variants, all modes)."""
    strict = mode != "lenient"
    n = len(raw)
    res = _Result()
    pos = 0

    # PRI
    if raw[:1] == b"<":
        m = _PRI.match(raw)
        digits = m[1] if m is not None else b""
        value = int(digits) if digits else 999
        if m is None or value > 191 or (len(digits) > 1 and digits[0] == 0x30):
            if strict:
                reason, at = _pri_fault(raw)
                raise res.fault(mode, reason, at, raw)
            return res.message(raw, _decode(raw))  # RFC 3164 §4.3.3: all of it is CONTENT
        res.facility = facility_of(value)
        res.severity = severity_of(value)
        pos = _skip_spaces(raw, m.end(), n)
    elif strict and not optional_priority:
        raise res.fault(mode, "expected '<PRI>'", 0, raw)

    # Cisco IOS prefix
    cisco_on = cisco is not False
    if cisco_on:
        pos, cisco_fault = _cisco_prefix(raw, pos, _cisco_components(cisco), strict, res)
        if cisco_fault is not None:
            raise res.fault(mode, cisco_fault[0], cisco_fault[1], raw)

    # TIMESTAMP
    have_timestamp = False
    ts_pos = pos
    m = _BSD_TS.match(raw, pos)
    if m is not None and (month := _MONTH_NUMBER.get(m[1].lower())) is not None:
        end = m.end()
        if end == n or raw[end] == _SP or (cisco_on and raw[end] == _COLON):
            have_timestamp = True
            pos = end
            ref = reference if reference is not None else default_reference()
            year = int(m[3]) if m[3] else _resolve_year(month, ref)
            try:
                res.timestamp = datetime(
                    year, month, int(m[2]), int(m[4]), int(m[5]), int(m[6]),
                    _fraction(m[7]), tzinfo=ref.tzinfo,
                )  # fmt: skip
            except ValueError as exc:
                if strict:
                    raise res.fault(mode, f"impossible date or time: {exc}", ts_pos, raw) from None
    if not have_timestamp and rfc3339 and (m := _RFC3339_TS.match(raw, pos)) is not None:
        end = m.end()
        if end == n or raw[end] == _SP or (cisco_on and raw[end] == _COLON):
            have_timestamp = True
            pos = end
            if m[1]:
                try:
                    res.timestamp = scan_timestamp(raw, ts_pos, lenient=not strict)[0]
                except TimestampError as exc:
                    if strict:
                        raise res.fault(mode, exc.reason, exc.index, raw) from None
            elif strict:
                raise res.fault(mode, "RFC 3339 timestamp without a UTC offset", end, raw)
            else:  # a sender that left the offset out: the zone of the reference
                ref = reference if reference is not None else default_reference()
                with contextlib.suppress(ValueError):  # impossible: timestamp stays None
                    res.timestamp = fromisoformat(m[0].decode("ascii")).replace(tzinfo=ref.tzinfo)
    if have_timestamp:
        if cisco_on and raw[pos : pos + 1] == b":":
            pos += 1
        pos = _skip_spaces(raw, pos, n)
    elif strict:
        raise res.fault(mode, "expected a TIMESTAMP ('Mmm dd hh:mm:ss')", pos, raw)

    # HOSTNAME: the first word after the TIMESTAMP, unless that word is a TAG already. Without
    # a TIMESTAMP there is no HOSTNAME (§4.3.2), but a first word that ends like a TAG is one
    # (rsyslog reads it so; the stdlib SysLogHandler's `ident` makes such messages).
    tag = _TAG.match(raw, pos)
    assert tag is not None  # the pattern matches the empty string
    is_tag = _is_tag(tag, raw)
    first_word_is_tag = is_tag and (tag[2] is not None or tag.end() == n or raw[tag.end()] == _SP)
    if not have_timestamp:
        is_tag = first_word_is_tag
    elif res.hostname is None and not first_word_is_tag and pos < n:
        end = raw.find(b" ", pos)
        if end < 0:
            end = n
        res.hostname = _decode(raw[pos:end])
        pos = _skip_spaces(raw, end, n)
        tag = _TAG.match(raw, pos)
        assert tag is not None
        is_tag = _is_tag(tag, raw)

    # TAG, then rsyslog's structured data, then MSG
    if is_tag:
        name, pid = tag[1], tag[2]
        res.app_name = _decode(name) if name else None
        res.procid = _decode(pid) if pid else None
        pos = _skip_spaces(raw, tag.end(), n)
        if pos < n and raw[pos] == 0x5B:  # "[": rsyslog's structured data after the TAG
            sd = _parse_sd(raw, pos)
            if sd is not None:
                res.sd, pos = sd
                if pos < n:
                    pos += 1  # the SP after the SD
    elif pos >= n:
        return res.message(raw)  # nothing after the header: no MSG

    # MSG
    bom = raw.startswith(_BOM, pos)
    if bom:
        pos += 3
    return res.message(raw, _decode(raw[pos:]), bom)
