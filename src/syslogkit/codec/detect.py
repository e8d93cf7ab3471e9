"""Parse a syslog message of either format: RFC 5424 or RFC 3164, told apart by one cheap check.

A message is RFC 5424 when `<PRI>` is followed by a VERSION (a nonzero digit, at most three
digits) and a space: `<N>1 ` (RFC 5424 §6.2.2). Everything else is RFC 3164 or one of its
real-world variants, including Cisco IOS's `<N>643: ` counters (a colon, not a space).
"""

from __future__ import annotations

import re
from typing import Any, Final

from syslogkit.codec.message import SyslogMessage
from syslogkit.codec.rfc3164 import parse_3164
from syslogkit.codec.rfc5424 import parse_5424 as _parse_5424

__all__ = ["is_rfc5424", "parse"]

_OPTIONS_3164: Final = frozenset({"reference", "cisco", "rfc3339", "optional_priority"})
_OPTIONS_5424: Final = frozenset({"optional_priority", "compliant_msg"})
_OPTIONS: Final = _OPTIONS_3164 | _OPTIONS_5424
_MODES: Final = frozenset({"strict", "best_effort", "lenient"})

#: `<PRI>VERSION SP` in one C call: the same test as `is_rfc5424` without optional_priority.
_STARTS_LIKE_5424: Final = re.compile(rb"<[^>]{1,3}>[1-9][0-9]{0,2} ").match


def _version_follows(raw: bytes, i: int) -> bool:
    """Whether `raw[i:]` starts with VERSION SP: NONZERO-DIGIT 0*2DIGIT SP."""
    n = len(raw)
    if i >= n or not 0x31 <= raw[i] <= 0x39:
        return False
    for j in range(i + 1, min(i + 4, n)):
        c = raw[j]
        if c == 0x20:
            return True
        if not 0x30 <= c <= 0x39:
            return False
    return False


def is_rfc5424(raw: bytes, optional_priority: bool = False) -> bool:
    """Whether `raw` is an RFC 5424 message: `<PRI>VERSION SP` (`<N>1 ...`).

    With `optional_priority`, a message without PRI is RFC 5424 when it starts with VERSION SP
    and then a NILVALUE or a full-date (`1 - ...`, `1 2003-10-11T...`).
    """
    if raw[:1] == b"<":
        close = raw.find(b">", 1, 5)
        if close < 2:
            return False
        return raw[close + 1 : close + 3] == b"1 " or _version_follows(raw, close + 1)
    if not optional_priority or not _version_follows(raw, 0):
        return False
    after = raw.find(b" ", 0, 4) + 1
    nxt = raw[after : after + 1]
    return nxt == b"-" or (nxt.isdigit() and raw[after + 4 : after + 5] == b"-")


def parse(data: bytes | str, mode: str = "strict", **options: Any) -> SyslogMessage:
    """Parse one syslog message, RFC 5424 or RFC 3164, from bytes or str.

    `mode`: `"strict"` (default) and `"best_effort"` raise `ParseError` (best-effort with the
    `partial` result); `"lenient"` never raises: a message that looks like RFC 5424 but fails
    even its lenient parser is read as lenient RFC 3164.

    Options, each passed to the parser that understands it (others ignore it):
    `optional_priority` (both), `compliant_msg` (RFC 5424), `reference`, `cisco`, `rfc3339`
    (RFC 3164; see `parse_3164`). An unknown option is a `TypeError`.
    """
    raw = data if type(data) is bytes else _as_bytes(data)
    if not options and _STARTS_LIKE_5424(raw):
        if mode == "strict":  # the hot path: one regex test, then the RFC 5424 parser
            return _parse_5424(raw)
        if mode == "best_effort":
            return _parse_5424(raw, mode)
    if mode not in _MODES:
        raise ValueError(f"mode must be 'strict', 'best_effort' or 'lenient', not {mode!r}")
    if not options:
        if mode == "lenient" and _STARTS_LIKE_5424(raw):
            try:
                return _parse_5424(raw, mode)
            except Exception:  # lenient never raises: read it as RFC 3164 instead
                pass
        return parse_3164(raw, mode)

    unknown = options.keys() - _OPTIONS
    if unknown:
        raise TypeError(f"parse() got unknown option(s): {', '.join(sorted(unknown))}")
    if is_rfc5424(raw, bool(options.get("optional_priority", False))):
        kw = {k: v for k, v in options.items() if k in _OPTIONS_5424}
        if mode != "lenient":
            return _parse_5424(raw, mode, **kw)
        try:
            return _parse_5424(raw, mode, **kw)
        except Exception:  # lenient never raises: read it as RFC 3164 instead
            pass
    return parse_3164(raw, mode, **{k: v for k, v in options.items() if k in _OPTIONS_3164})


def _as_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    """The input as bytes (str is encoded as UTF-8)."""
    return data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
