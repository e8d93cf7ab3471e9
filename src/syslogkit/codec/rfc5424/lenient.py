"""RFC 5424 parsing, lenient mode: never raises; what does not fit the header is MSG.

Only reached for input the regex fast path refused (see `parsing` for the rules).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

from syslogkit.codec._rfc3339 import TimestampError, scan_timestamp
from syslogkit.codec.message import (
    Facility,
    SDElement,
    Severity,
    SyslogMessage,
    facility_of,
    severity_of,
)
from syslogkit.codec.rfc5424.grammar import BOM, DIGITS, PRI_MAX, unescape

__all__ = ["parse_lenient"]

_NOT_SPACE_RUN: Final = re.compile(rb"[^ ]*")
_LENIENT_ID_RUN: Final = re.compile(rb"[^ \]]*")
_LENIENT_NAME_RUN: Final = re.compile(rb'[^ =\]"]*')
_LENIENT_VALUE_RUN: Final = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+', re.S)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _lenient_element(buf: bytes, pos: int) -> tuple[SDElement | None, int]:
    """One SD-ELEMENT at `buf[pos] == '['`: (element or None when malformed, end); end -1 when
    no ']' closes it."""
    n = len(buf)
    m = _LENIENT_ID_RUN.match(buf, pos + 1)
    assert m is not None
    i = m.end()
    sd_id = _text(buf[pos + 1 : i])
    params: list[tuple[str, str]] = []
    malformed = not sd_id
    while not malformed:
        if i >= n:
            return None, -1
        c = buf[i]
        if c == 0x5D:  # ']'
            return SDElement(sd_id, tuple(params)), i + 1
        if c != 0x20:
            break
        while i < n and buf[i] == 0x20:
            i += 1
        if i < n and buf[i] == 0x5D:
            continue
        m = _LENIENT_NAME_RUN.match(buf, i)
        assert m is not None
        end = m.end()
        if end == i or end + 1 >= n or buf[end] != 0x3D or buf[end + 1] != 0x22:
            i = end
            break
        m = _LENIENT_VALUE_RUN.match(buf, end + 2)
        assert m is not None
        close = m.end()
        if close >= n or buf[close] != 0x22:
            return None, -1  # the value never ends
        params.append((_text(buf[i:end]), unescape(_text(buf[end + 2 : close]))))
        i = close + 1
    close = buf.find(b"]", i)
    return None, (-1 if close < 0 else close + 1)


def parse_lenient(buf: bytes, raw: bytes) -> SyslogMessage:
    n = len(buf)
    pos = 0
    facility: Facility | None = None
    severity: Severity | None = None
    version: int | None = None
    fields: list[str | None] = [None, None, None, None]
    moment: datetime | None = None
    extra: dict[str, Any] | None = None
    elements: list[SDElement] = []
    msg_start = n

    if n > 2 and buf[0] == 0x3C:  # '<'
        close = buf.find(b">", 1, 5)
        if close > 1 and buf[1:close].isdigit():
            value = int(buf[1:close])
            if value <= PRI_MAX:
                facility, severity = facility_of(value), severity_of(value)
            pos = close + 1
    end = pos
    while end < n and end - pos < 3 and buf[end] in DIGITS:
        end += 1
    if end > pos and buf[pos] != 0x30 and (end == n or buf[end] == 0x20):
        version = int(buf[pos:end])
        pos = end
        tokens = []
        for _ in range(5):
            while pos < n and buf[pos] == 0x20:
                pos += 1
            if pos >= n:
                break
            m = _NOT_SPACE_RUN.match(buf, pos)
            assert m is not None
            tokens.append(buf[pos : m.end()])
            pos = m.end()
        if tokens and tokens[0] != b"-":
            try:
                moment, end = scan_timestamp(tokens[0], 0, lenient=True)
                if end != len(tokens[0]):
                    raise TimestampError("trailing bytes", end)
            except TimestampError:
                moment = None
                extra = {"timestamp_raw": _text(tokens[0])}
        for k, token in enumerate(tokens[1:]):
            fields[k] = None if token == b"-" else _text(token)
        while pos < n and buf[pos] == 0x20:
            pos += 1
        msg_start = pos
        if pos < n and buf[pos] == 0x2D and (pos + 1 == n or buf[pos + 1] == 0x20):  # '-'
            msg_start = pos + 2
        elif pos < n and buf[pos] == 0x5B:  # '['
            while pos < n and buf[pos] == 0x5B:
                element, end = _lenient_element(buf, pos)
                if end < 0:
                    break
                if element is not None:
                    elements.append(element)
                pos = end
            msg_start = pos + 1 if pos < n and buf[pos] == 0x20 else pos
    else:
        msg_start = pos
    body = buf[msg_start:]
    bom = body[:3] == BOM
    if bom:
        body = body[3:]
    return SyslogMessage(
        facility=facility,
        severity=severity,
        version=version,
        timestamp=moment,
        hostname=fields[0],
        app_name=fields[1],
        procid=fields[2],
        msgid=fields[3],
        structured_data=tuple(elements),
        msg=_text(body) if body or bom else None,
        bom=bom,
        raw=raw,
        extra=extra,
    )
