"""RFC 5424 parsing, the scanner: the strict grammar byte by byte, for faults and odd input.

Slower than the regex fast path, it names the first byte at fault (1-based column in
ParseError) and, for best-effort, keeps what parsed before it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final, NoReturn

from syslogkit.codec._rfc3339 import TimestampError, describe_byte, scan_timestamp
from syslogkit.codec.message import (
    Facility,
    ParseError,
    SDElement,
    Severity,
    SyslogMessage,
    facility_of,
    severity_of,
)
from syslogkit.codec.rfc5424.grammar import (
    APP_NAME,
    BOM,
    DIGITS,
    HOSTNAME,
    MSGID,
    PRI_MAX,
    PROCID,
    SD_NAME,
    VERSION_MAX,
    unescape,
)

__all__ = ["StrictScanner"]

_FIELD_RUN: Final = re.compile(rb"[!-~]*")
_NAME_RUN: Final = re.compile(rb"[!#-<>-\\^-~]*")
_VALUE_RUN: Final = re.compile(rb'[^"\\\]]*+(?:\\.[^"\\\]]*+)*+', re.S)


def _utf8_fault(data: bytes) -> int | None:
    """0-based index of the byte where `data` stops being UTF-8 (go-syslog's column), or None."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start if exc.reason == "invalid start byte" else exc.end
    return None


class StrictScanner:
    """The strict grammar, position by position; records what parsed for best-effort."""

    __slots__ = (
        "app_name",
        "bom",
        "buf",
        "elements",
        "facility",
        "hostname",
        "msg",
        "msgid",
        "pos",
        "procid",
        "severity",
        "timestamp",
        "version",
        "want_partial",
    )

    def __init__(self, buf: bytes, want_partial: bool) -> None:
        self.buf = buf
        self.pos = 0
        self.want_partial = want_partial
        self.facility: Facility | None = None
        self.severity: Severity | None = None
        self.version: int | None = None
        self.timestamp: datetime | None = None
        self.hostname: str | None = None
        self.app_name: str | None = None
        self.procid: str | None = None
        self.msgid: str | None = None
        self.elements: list[SDElement] = []
        self.msg: str | None = None
        self.bom = False

    def result(self) -> SyslogMessage:
        return SyslogMessage(
            facility=self.facility,
            severity=self.severity,
            version=self.version,
            timestamp=self.timestamp,
            hostname=self.hostname,
            app_name=self.app_name,
            procid=self.procid,
            msgid=self.msgid,
            structured_data=tuple(self.elements),
            msg=self.msg,
            bom=self.bom,
            raw=self.buf,
        )

    def fail(self, reason: str, index: int) -> NoReturn:
        raise ParseError(reason, index + 1, self.result() if self.want_partial else None)

    def run(self, optional_priority: bool, compliant_msg: bool) -> SyslogMessage:
        self.pri(optional_priority)
        self.read_version()
        self.sp("VERSION")
        self.read_timestamp()
        self.sp("TIMESTAMP")
        self.hostname = self.field("HOSTNAME", HOSTNAME)
        self.app_name = self.field("APP-NAME", APP_NAME)
        self.procid = self.field("PROCID", PROCID)
        self.msgid = self.field("MSGID", MSGID)
        self.structured_data()
        self.read_msg(compliant_msg)
        return self.result()

    def sp(self, after: str) -> None:
        buf, pos = self.buf, self.pos
        if pos >= len(buf):
            self.fail(f"message ends after {after}; expected SP", pos)
        if buf[pos] != 0x20:
            self.fail(f"expected SP after {after}, found {describe_byte(buf, pos)}", pos)
        self.pos = pos + 1

    def pri(self, optional: bool) -> None:
        buf = self.buf
        if not buf:
            if optional:
                return
            self.fail("empty message: expected '<' and the PRI", 0)
        if buf[0] != 0x3C:  # '<'
            if optional:
                return
            self.fail(f"expected '<' starting the PRI, found {describe_byte(buf, 0)}", 0)
        if len(buf) < 2:
            self.fail("message ends inside the PRI", 1)
        first = buf[1]
        if first == 0x30:  # '0'
            value, pos = 0, 2
            if pos < len(buf) and buf[pos] in DIGITS:
                self.fail("PRI value has a leading zero (RFC 5424 §6.2.1)", pos)
        elif first in DIGITS:
            value, pos = first - 48, 2
            while pos < len(buf) and buf[pos] in DIGITS:
                value = value * 10 + buf[pos] - 48
                if value > PRI_MAX:
                    self.fail(f"PRI value exceeds {PRI_MAX} (facility 0-23 * 8 + severity)", pos)
                pos += 1
        else:
            self.fail(f"expected the PRI value (0-{PRI_MAX}), found {describe_byte(buf, 1)}", 1)
        if pos >= len(buf):
            self.fail("message ends inside the PRI; expected '>'", pos)
        if buf[pos] != 0x3E:  # '>'
            self.fail(f"expected '>' closing the PRI, found {describe_byte(buf, pos)}", pos)
        self.facility = facility_of(value)
        self.severity = severity_of(value)
        self.pos = pos + 1

    def read_version(self) -> None:
        buf, pos = self.buf, self.pos
        if pos >= len(buf):
            self.fail("message ends where VERSION was expected", pos)
        c = buf[pos]
        if c == 0x30:
            self.fail("VERSION must not start with 0 (1-999)", pos)
        if c not in DIGITS:
            self.fail(f"expected VERSION (1-{VERSION_MAX}), found {describe_byte(buf, pos)}", pos)
        value = 0
        start = pos
        while pos < len(buf) and buf[pos] in DIGITS:
            if pos - start == 3:
                self.fail(f"VERSION has more than 3 digits (1-{VERSION_MAX})", pos)
            value = value * 10 + buf[pos] - 48
            self.version = value
            pos += 1
        self.pos = pos

    def read_timestamp(self) -> None:
        buf, pos = self.buf, self.pos
        if pos >= len(buf):
            self.fail("message ends where TIMESTAMP was expected", pos)
        if buf[pos] == 0x2D:  # '-'
            self.pos = pos + 1
            return
        if buf[pos] not in DIGITS:
            self.fail(f"expected TIMESTAMP (RFC 3339) or '-', found {describe_byte(buf, pos)}", pos)
        try:
            self.timestamp, self.pos = scan_timestamp(buf, pos)
        except TimestampError as exc:
            self.fail(exc.reason, exc.index)

    def field(self, name: str, limit: int) -> str | None:
        buf, start = self.buf, self.pos
        if start >= len(buf):
            self.fail(f"message ends where {name} was expected", start)
        m = _FIELD_RUN.match(buf, start)
        assert m is not None
        end = m.end()
        if end - start > limit:
            self.fail(f"{name} is longer than {limit} characters", start + limit)
        if end == start:
            self.fail(
                f"expected {name} (1-{limit} printable US-ASCII characters) or '-', "
                f"found {describe_byte(buf, start)}",
                start,
            )
        if end < len(buf) and buf[end] != 0x20:
            self.fail(
                f"{name} contains {describe_byte(buf, end)}, which is not printable US-ASCII", end
            )
        self.pos = end
        self.sp(name)
        text = buf[start:end].decode("ascii")
        return None if text == "-" else text

    def sd_name(self, what: str) -> str:
        buf, start = self.buf, self.pos
        m = _NAME_RUN.match(buf, start)
        assert m is not None
        end = m.end()
        if end - start > SD_NAME:
            self.fail(f"{what} is longer than {SD_NAME} characters", start + SD_NAME)
        if end == start:
            self.fail(
                f"expected {what} (1-{SD_NAME} printable US-ASCII characters except "
                f"'=', SP, ']' and '\"'), found {describe_byte(buf, start)}",
                start,
            )
        self.pos = end
        return buf[start:end].decode("ascii")

    def structured_data(self) -> None:
        buf, pos = self.buf, self.pos
        if pos >= len(buf):
            self.fail("message ends where STRUCTURED-DATA was expected", pos)
        if buf[pos] == 0x2D:  # '-'
            self.pos = pos + 1
            return
        if buf[pos] != 0x5B:  # '['
            self.fail(
                f"expected STRUCTURED-DATA ('-' or '['), found {describe_byte(buf, pos)}", pos
            )
        seen: set[str] = set()
        while self.pos < len(buf) and buf[self.pos] == 0x5B:
            self.pos += 1
            sd_id = self.sd_name("SD-ID")
            params = []
            while True:
                pos = self.pos
                if pos >= len(buf):
                    self.fail("message ends inside an SD-ELEMENT; expected ']'", pos)
                c = buf[pos]
                if c == 0x5D:  # ']'
                    break
                if c != 0x20:
                    self.fail(
                        f"expected SP and an SD-PARAM, or ']', in SD-ELEMENT {sd_id!r}, "
                        f"found {describe_byte(buf, pos)}",
                        pos,
                    )
                self.pos = pos + 1
                params.append(self.sd_param())
            if sd_id in seen:
                self.fail(f"SD-ID {sd_id!r} appears twice (RFC 5424 §6.3.2: it MUST NOT)", self.pos)
            seen.add(sd_id)
            self.pos += 1
            self.elements.append(SDElement(sd_id, tuple(params)))

    def sd_param(self) -> tuple[str, str]:
        name = self.sd_name("PARAM-NAME")
        buf, pos = self.buf, self.pos
        if pos >= len(buf) or buf[pos] != 0x3D:  # '='
            self.fail(
                f"expected '=' after PARAM-NAME {name!r}, found {describe_byte(buf, pos)}", pos
            )
        pos += 1
        if pos >= len(buf) or buf[pos] != 0x22:  # '"'
            self.fail(
                f"expected '\"' opening the value of {name!r}, found {describe_byte(buf, pos)}", pos
            )
        start = pos + 1
        m = _VALUE_RUN.match(buf, start)
        assert m is not None
        end = m.end()
        if end >= len(buf):
            self.fail(f"message ends inside the value of {name!r}; expected '\"'", end)
        c = buf[end]
        if c == 0x5D:  # ']'
            self.fail(
                f"']' inside the value of {name!r} must be escaped as '\\]' (RFC 5424 §6.3.3)",
                end,
            )
        if c == 0x5C:  # a backslash with nothing after it
            self.fail("message ends inside an escape sequence in PARAM-VALUE", end + 1)
        raw = buf[start:end]
        fault = _utf8_fault(raw)
        if fault is not None:
            self.fail(f"value of {name!r} is not valid UTF-8 (RFC 5424 §6.3.3)", start + fault)
        self.pos = end + 1
        return name, unescape(raw.decode("utf-8"))

    def read_msg(self, compliant: bool) -> None:
        buf, pos = self.buf, self.pos
        if pos >= len(buf):
            return
        if buf[pos] != 0x20:
            self.fail(
                f"expected SP before MSG after STRUCTURED-DATA, found {describe_byte(buf, pos)}",
                pos,
            )
        body = buf[pos + 1 :]
        if body[:3] == BOM:
            self.bom = True
            body = body[3:]
            if compliant:
                fault = _utf8_fault(body)
                if fault is not None:
                    self.msg = body[:fault].decode("utf-8", "replace")
                    self.fail(
                        "MSG starts with the BOM but is not valid UTF-8 (RFC 5424 §6.4, MSG-UTF8)",
                        pos + 4 + fault,
                    )
        if body or self.bom:
            self.msg = body.decode("utf-8", "replace")
