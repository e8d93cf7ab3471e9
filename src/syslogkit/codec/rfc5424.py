r"""RFC 5424 syslog: format a SyslogMessage to bytes, parse it back (strict, best-effort, lenient).

Sans-I/O: values in, values out; no clock, socket or environment read.

Formatting (`format_5424`) never fails on field content; it makes it fit the ABNF:

- HOSTNAME, APP-NAME, PROCID, MSGID keep PRINTUSASCII (33..126); any other character (space,
  control, non-ASCII) becomes one `?`, so a reader sees where something was replaced. Then they are
  cut to their limits (255, 48, 128, 32); empty or None gives the NILVALUE `-`.
- SD-IDs and PARAM-NAMEs get the same treatment, with `=`, SP, `]` and `"` also replaced, cut to 32;
  an empty one becomes `-`. PARAM-VALUEs are escaped (`\\`, `\"`, `\]`), never cut.
- TIMESTAMP: microseconds (6 digits) and the datetime's own offset, `Z` for offset zero. A naive
  datetime is taken as UTC: reading the local zone would be an environment read, and guessing would
  be worse than a documented rule.
- MSG: None or "" gives no MSG part. BOM `"auto"` writes the BOM when MSG holds non-ASCII or the
  message says it had one (`msg.bom`); True/False force it (a message without MSG never has one).
  Characters UTF-8 cannot encode (lone surrogates) become `?`.
- facility/severity None (a message parsed without PRI) are written as user.notice (13), the
  default PRI of RFC 3164 §4.3.3; version None as 1.
- `max_size`: the encoded message never exceeds it and no UTF-8 sequence is split. MSG is cut first;
  if HEADER and STRUCTURED-DATA alone exceed it, SD becomes `-` (counted in `report["sd_dropped"]`).
  Each call that shortens anything adds 1 to `report["truncated"]`. A `max_size` smaller than the
  header itself is a ValueError.

Parsing (`parse_5424`) returns a SyslogMessage whose `raw` holds the input bytes:

- "strict": the ABNF of RFC 5424 §6 exactly, limits included (PRI 0..191 without leading zeros,
  VERSION 1..999, TIMESTAMP with at most 6 fraction digits, no leap second, real calendar dates;
  SD-NAMEs of at most 32 characters; SD-IDs unique; PARAM-VALUE valid UTF-8 with `"`, `\\` and `]`
  escaped). §6.3.3: `\"`, `\\`, `\]` are unescaped; any other backslash pair stays as written.
  A fault raises ParseError with the 1-based byte column of the first byte at fault.
- "best_effort": as strict, and the ParseError's `.partial` holds what parsed before the fault
  (fields not reached are None).
- "lenient": never raises. Whitespace around the message is trimmed, a missing or out-of-range PRI
  gives facility/severity None, fields may be longer than their limits and hold any bytes
  (decoded with replacement), extra spaces between header fields are skipped, a malformed
  SD-ELEMENT is dropped, duplicate SD-IDs are kept in order, a TIMESTAMP that cannot be read gives
  None with its text in `extra["timestamp_raw"]`; whatever does not fit the header is MSG.

MSG: a MSG starting with the UTF-8 BOM sets `bom=True` and the BOM is removed from `msg`; an empty
MSG (nothing after the SP that ends STRUCTURED-DATA) is None, as go-syslog reports it; a MSG that is
not valid UTF-8 is decoded with replacement characters (`raw` keeps the bytes). With
`compliant_msg=True` a MSG that starts with the BOM must be valid UTF-8 (MSG-UTF8); MSG-ANY (no BOM)
may hold any bytes either way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final, NoReturn

from syslogkit.codec._rfc3339 import (
    TimestampError,
    describe_byte,
    format_timestamp,
    fromisoformat,
    scan_timestamp,
)
from syslogkit.codec.message import (
    LIMITS,
    Facility,
    ParseError,
    SDElement,
    Severity,
    SyslogMessage,
    facility_of,
    severity_of,
)

__all__ = [
    "MODES",
    "format_5424",
    "format_timestamp",
    "parse_5424",
    "sanitize_field",
]

MODES: Final = ("strict", "best_effort", "lenient")

_HOSTNAME: Final = LIMITS["hostname"]
_APP_NAME: Final = LIMITS["app_name"]
_PROCID: Final = LIMITS["procid"]
_MSGID: Final = LIMITS["msgid"]
_SD_NAME: Final = LIMITS["sd_name"]
_PRI_MAX: Final = LIMITS["pri_max"]
_VERSION_MAX: Final = LIMITS["version_max"]
_SECFRAC: Final = LIMITS["secfrac_digits"]

_BOM: Final = b"\xef\xbb\xbf"

# ------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------

_SD_NAME_BAD: Final = frozenset('= ]"')


def sanitize_field(value: str | None, limit: int) -> str:
    """A header field as the ABNF wants it: PRINTUSASCII only (others become `?`), at most
    `limit` characters, and the NILVALUE `-` for None or ""."""
    if value is None:
        return "-"
    if type(value) is not str:
        value = str(value)
    if not value:
        return "-"
    if not (value.isascii() and value.isprintable()) or " " in value:
        value = "".join(c if "!" <= c <= "~" else "?" for c in value)
    return value if len(value) <= limit else value[:limit]


_sd_names: dict[str, str] = {}


def _sd_name(name: str) -> str:
    """An SD-ID or PARAM-NAME: PRINTUSASCII except `= SP ] "` (others become `?`), cut to 32."""
    done = _sd_names.get(name)
    if done is not None:
        return done
    if not isinstance(name, str):
        name = str(name)
    clean = "".join("?" if not ("!" <= c <= "~") or c in _SD_NAME_BAD else c for c in name)
    clean = clean[:_SD_NAME] or "-"
    if len(_sd_names) < 4096:  # SD vocabularies are small; the bound guards against abuse
        _sd_names[name] = clean
    return clean


def _escape(value: str) -> str:
    """A PARAM-VALUE with `\\`, `"` and `]` escaped (RFC 5424 §6.3.3)."""
    if type(value) is not str:
        value = str(value)
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if '"' in value:
        value = value.replace('"', '\\"')
    if "]" in value:
        value = value.replace("]", "\\]")
    return value


def _format_sd(elements: Iterable[SDElement]) -> str:
    names = _sd_names
    parts = []
    for element in elements:
        sd_id = element.id
        parts.append("[" + (names.get(sd_id) or _sd_name(sd_id)))
        for name, value in element.params:
            if type(value) is not str or "\\" in value or '"' in value or "]" in value:
                value = _escape(value)
            parts.append(" " + (names.get(name) or _sd_name(name)) + '="' + value + '"')
        parts.append("]")
    return "".join(parts) if parts else "-"


def _cut_utf8(data: bytes, size: int) -> bytes:
    """At most `size` bytes of UTF-8 `data`, never ending inside a multi-byte sequence."""
    if len(data) <= size:
        return data
    while size > 0 and (data[size] & 0xC0) == 0x80:  # data[size] is the first byte left out
        size -= 1
    return data[:size]


def _count(report: dict[str, int] | None, key: str) -> None:
    if report is not None:
        report[key] = report.get(key, 0) + 1


def format_5424(
    msg: SyslogMessage,
    *,
    max_size: int | None = None,
    bom: bool | str = "auto",
    report: dict[str, int] | None = None,
) -> bytes:
    """RFC 5424 bytes of `msg`: `<PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`.

    Fields are made to fit the ABNF (see the module documentation). `bom`: "auto", True or False.
    `max_size`: byte limit on the result (MSG cut first, then SD dropped). `report`: a dict in
    which `truncated` and `sd_dropped` are counted.
    """
    facility = msg.facility
    severity = msg.severity
    if facility is None:
        facility = Facility.USER
    if severity is None:
        severity = Severity.NOTICE
    if not (0 <= facility <= 23 and 0 <= severity <= 7):
        raise ValueError(f"facility {facility!r} / severity {severity!r} out of range (0-23 / 0-7)")
    version = msg.version
    if version is None:
        version = 1
    elif not (0 < version <= _VERSION_MAX):
        raise ValueError(f"RFC 5424 VERSION must be 1..{_VERSION_MAX}, not {version!r}")
    if bom != "auto" and bom is not True and bom is not False:
        raise ValueError(f'bom must be "auto", True or False, not {bom!r}')
    head = (
        f"<{(facility << 3) | severity}>{version} {format_timestamp(msg.timestamp)} "
        f"{sanitize_field(msg.hostname, _HOSTNAME)} {sanitize_field(msg.app_name, _APP_NAME)} "
        f"{sanitize_field(msg.procid, _PROCID)} {sanitize_field(msg.msgid, _MSGID)} "
    )
    elements = msg.structured_data
    sd = _format_sd(elements) if elements else "-"
    text = msg.msg
    if text is not None:
        use_bom = (msg.bom or not text.isascii()) if bom == "auto" else bool(bom)
        if use_bom:
            out = (head + sd + " \ufeff" + text).encode("utf-8", "replace")
        elif text:
            out = (head + sd + " " + text).encode("utf-8", "replace")
        else:
            out = (head + sd).encode("utf-8", "replace")
    else:
        use_bom = False
        out = (head + sd).encode("utf-8", "replace")
    if max_size is None or len(out) <= max_size:
        return out
    return _fit(head, sd, text, use_bom, max_size, report)


def _fit(
    head: str,
    sd: str,
    text: str | None,
    use_bom: bool,
    max_size: int,
    report: dict[str, int] | None,
) -> bytes:
    """The message cut to `max_size` bytes: MSG first, then SD dropped."""
    _count(report, "truncated")
    fixed = (head + sd).encode("utf-8", "replace")
    if len(fixed) > max_size and sd != "-":
        _count(report, "sd_dropped")
        fixed = (head + "-").encode("ascii")
    if len(fixed) > max_size:
        raise ValueError(
            f"max_size={max_size} is smaller than the RFC 5424 header alone ({len(fixed)} bytes)"
        )
    if not text and not use_bom:
        return fixed
    lead = b" \xef\xbb\xbf" if use_bom else b" "
    room = max_size - len(fixed) - len(lead)
    body = _cut_utf8(text.encode("utf-8", "replace"), room) if text and room > 0 else b""
    if not body and (text or room < 0):
        return fixed  # no byte of MSG fits: leave MSG (and its BOM) out
    return fixed + lead + body


# ------------------------------------------------------------------------------------------------
# Parsing: the fast path (one compiled regex over the decoded text)
# ------------------------------------------------------------------------------------------------

_NAME_CLASS: Final = r"[!#-<>-\\^-~]"  # PRINTUSASCII except '"' (34), '=' (61), ']' (93)
_NAME_RE: Final = _NAME_CLASS + "{1," + str(_SD_NAME) + "}"
_VALUE_RE: Final = r'[^"\\\]]*+(?:\\.[^"\\\]]*+)*+'  # escape pairs; '"', '\', ']' only escaped
_PARAM_RE: Final = " " + _NAME_RE + '="' + _VALUE_RE + '"'
_TS_RE: Final = (
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,"
    + str(_SECFRAC)
    + r"})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
#: The whole strict grammar up to the end of STRUCTURED-DATA; a NILVALUE captures None.
_FAST: Final = re.compile(
    r"(?:<([0-9]{1,3})>)?([1-9][0-9]{0,2}) (?:-|("
    + _TS_RE
    + "))"
    + "".join(f" (?:-|([!-~]{{1,{n}}}))" for n in (_HOSTNAME, _APP_NAME, _PROCID, _MSGID))
    + " "
    + r"(?:-|((?:\["
    + _NAME_RE
    + "(?:"
    + _PARAM_RE
    + r")*+\])++))",
    re.S | re.A,
)
#: Over SD text the fast regex accepted: ("id", "", "") opens an element, ("", name, value) a param.
_TOKEN: Final = re.compile(
    r"\[(" + _NAME_RE + ")| (" + _NAME_RE + ')="(' + _VALUE_RE + ')"', re.S | re.A
)
_UNESCAPE: Final = re.compile(r'\\([\\"\]])')

_fast_match: Final = _FAST.match
_find_tokens: Final = _TOKEN.findall
_find_params: Final = re.compile(" (" + _NAME_RE + ')="(' + _VALUE_RE + ')"', re.S | re.A).findall
_unescape_sub: Final = _UNESCAPE.sub

#: PRIVAL text (no leading zeros, 0..191) -> (Facility, Severity).
_PRI: Final[dict[str, tuple[Facility, Severity]]] = {
    str(p): (facility_of(p), severity_of(p)) for p in range(_PRI_MAX + 1)
}
_VERSIONS: Final[dict[str, int]] = {str(v): v for v in range(1, _VERSION_MAX + 1)}


def _unescape(value: str) -> str:
    """RFC 5424 §6.3.3: `\\"`, `\\\\`, `\\]` lose their backslash; other pairs stay as written."""
    return _unescape_sub(r"\1", value) if "\\" in value else value


_MESSAGE_FIELDS: Final = (
    "facility",
    "severity",
    "version",
    "timestamp",
    "hostname",
    "app_name",
    "procid",
    "msgid",
    "structured_data",
    "msg",
    "bom",
    "raw",
    "extra",
)

_Build = Callable[..., SyslogMessage]


def _message_builder() -> _Build:
    """SyslogMessage with positional arguments (three times cheaper than keywords), guarded
    against a reordering of its fields."""
    names = tuple(f.name for f in dataclasses.fields(SyslogMessage))
    if names[: len(_MESSAGE_FIELDS)] == _MESSAGE_FIELDS:
        return SyslogMessage

    def build(*args: Any) -> SyslogMessage:
        return SyslogMessage(**dict(zip(_MESSAGE_FIELDS, args, strict=True)))

    return build


_SDBuild = Callable[[str, tuple[tuple[str, str], ...]], SDElement]


def _element_builder() -> _SDBuild:
    """SDElement without the frozen-dataclass `__init__` (which goes through
    `object.__setattr__`), when SDElement is a plain slotted dataclass without `__post_init__`."""
    slots = vars(SDElement).get("__slots__", ())
    if set(slots) != {"id", "params"} or hasattr(SDElement, "__post_init__"):
        return SDElement
    new = object.__new__
    set_id = vars(SDElement)["id"].__set__
    set_params = vars(SDElement)["params"].__set__

    def build(sd_id: str, params: tuple[tuple[str, str], ...]) -> SDElement:
        element = new(SDElement)
        set_id(element, sd_id)
        set_params(element, params)
        return element

    probe = (("k", "v"),)
    if build("x", probe) != SDElement("x", probe) or hash(build("x", ())) != hash(SDElement("x")):
        return SDElement
    return build


_message: Final = _message_builder()
_element: Final = _element_builder()


def _fast_sd(sd: str) -> tuple[SDElement, ...] | None:
    """SDElements of an SD text the fast regex accepted; None when an SD-ID repeats."""
    escaped = "\\" in sd
    if not escaped and "][" not in sd:
        # One element, no escapes (the common case): values hold no '"' or ']' and the first SP
        # ends the SD-ID, so one findall gives the params as they are.
        space = sd.find(" ")
        if space < 0:
            return (_element(sd[1:-1], ()),)
        return (_element(sd[1:space], tuple(_find_params(sd))),)
    out = []
    ids: list[str] = []
    params: list[tuple[str, str]] = []
    for sd_id, name, value in _find_tokens(sd):
        if sd_id:
            if ids:
                out.append(_element(ids[-1], tuple(params)))
                params = []
            ids.append(sd_id)
        else:
            params.append((name, _unescape(value) if escaped else value))
    out.append(_element(ids[-1], tuple(params)))
    if len(ids) > 1 and len(set(ids)) != len(ids):
        return None
    return tuple(out)


def _fast(text: str, raw: bytes, no_pri_ok: bool) -> SyslogMessage | None:
    """The message, when `text` is valid strict RFC 5424; None means "ask the scanner"."""
    m = _fast_match(text)
    if m is None:
        return None
    pri, version, ts, hostname, app_name, procid, msgid, sd = m.groups()
    if pri is None:
        if not no_pri_ok:
            return None
        facility = severity = None
    else:
        found = _PRI.get(pri)
        if found is None:
            return None
        facility, severity = found
    end = m.end()
    if end == len(text):
        msg = None
        bom = False
    elif text[end] == " ":
        msg = text[end + 1 :]
        if msg[:1] == "\ufeff":
            msg = msg[1:]
            bom = True
        else:
            bom = False
            if not msg:
                msg = None
    else:
        return None
    if ts is None:
        moment = None
    else:
        try:
            moment = fromisoformat(ts)
        except ValueError:  # a date the calendar lacks, or year 0: the scanner says which
            return None
    if sd is None:
        elements: tuple[SDElement, ...] | None = ()
    else:
        elements = _fast_sd(sd)
        if elements is None:
            return None
    return _message(
        facility,
        severity,
        _VERSIONS[version],
        moment,
        hostname,
        app_name,
        procid,
        msgid,
        elements,
        msg,
        bom,
        raw,
        None,
    )


# ------------------------------------------------------------------------------------------------
# Parsing: the scanner (bytes, position by position) for faults, columns and odd input
# ------------------------------------------------------------------------------------------------

_FIELD_RUN: Final = re.compile(rb"[!-~]*")
_NAME_RUN: Final = re.compile(rb"[!#-<>-\\^-~]*")
_VALUE_RUN: Final = re.compile(rb'[^"\\\]]*+(?:\\.[^"\\\]]*+)*+', re.S)
_DIGITS: Final = b"0123456789"


def _utf8_fault(data: bytes) -> int | None:
    """0-based index of the byte where `data` stops being UTF-8 (go-syslog's column), or None."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start if exc.reason == "invalid start byte" else exc.end
    return None


class _Strict:
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
        self.hostname = self.field("HOSTNAME", _HOSTNAME)
        self.app_name = self.field("APP-NAME", _APP_NAME)
        self.procid = self.field("PROCID", _PROCID)
        self.msgid = self.field("MSGID", _MSGID)
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
            if pos < len(buf) and buf[pos] in _DIGITS:
                self.fail("PRI value has a leading zero (RFC 5424 §6.2.1)", pos)
        elif first in _DIGITS:
            value, pos = first - 48, 2
            while pos < len(buf) and buf[pos] in _DIGITS:
                value = value * 10 + buf[pos] - 48
                if value > _PRI_MAX:
                    self.fail(f"PRI value exceeds {_PRI_MAX} (facility 0-23 * 8 + severity)", pos)
                pos += 1
        else:
            self.fail(f"expected the PRI value (0-{_PRI_MAX}), found {describe_byte(buf, 1)}", 1)
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
        if c not in _DIGITS:
            self.fail(f"expected VERSION (1-{_VERSION_MAX}), found {describe_byte(buf, pos)}", pos)
        value = 0
        start = pos
        while pos < len(buf) and buf[pos] in _DIGITS:
            if pos - start == 3:
                self.fail(f"VERSION has more than 3 digits (1-{_VERSION_MAX})", pos)
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
        if buf[pos] not in _DIGITS:
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
        if end - start > _SD_NAME:
            self.fail(f"{what} is longer than {_SD_NAME} characters", start + _SD_NAME)
        if end == start:
            self.fail(
                f"expected {what} (1-{_SD_NAME} printable US-ASCII characters except "
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
        return name, _unescape(raw.decode("utf-8"))

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
        if body[:3] == _BOM:
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


# ------------------------------------------------------------------------------------------------
# Parsing: lenient
# ------------------------------------------------------------------------------------------------

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
        params.append((_text(buf[i:end]), _unescape(_text(buf[end + 2 : close]))))
        i = close + 1
    close = buf.find(b"]", i)
    return None, (-1 if close < 0 else close + 1)


def _parse_lenient(buf: bytes, raw: bytes) -> SyslogMessage:
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
            if value <= _PRI_MAX:
                facility, severity = facility_of(value), severity_of(value)
            pos = close + 1
    end = pos
    while end < n and end - pos < 3 and buf[end] in _DIGITS:
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
    bom = body[:3] == _BOM
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


# ------------------------------------------------------------------------------------------------
# Parsing: entry point
# ------------------------------------------------------------------------------------------------


def _encode_surrogates(text: str) -> bytes:
    """UTF-8 of a str holding lone surrogates: the original bytes for surrogate escapes
    (U+DC80..U+DCFF), `?` for any other surrogate."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def parse_5424(
    data: bytes | str,
    mode: str = "strict",
    *,
    optional_priority: bool = False,
    compliant_msg: bool = False,
) -> SyslogMessage:
    """Parse one RFC 5424 message (bytes or str; columns count bytes of the UTF-8 encoding).

    `mode`: "strict", "best_effort" or "lenient" (see the module documentation).
    `optional_priority`: accept a message without `<PRI>` (facility/severity None); lenient
    always does. `compliant_msg`: a MSG that starts with the BOM must be valid UTF-8.
    """
    text: str | None
    if type(data) is bytes:
        raw = data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    elif isinstance(data, str):
        try:
            raw = data.encode("utf-8")
            text = data
        except UnicodeEncodeError:  # lone surrogates (os.fsdecode, ...): the scanner sees bytes
            raw = _encode_surrogates(data)
            text = None
    else:
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if mode == "strict" or mode == "best_effort":
        if text is not None:
            found = _fast(text, raw, optional_priority)
            if found is not None:
                return found
        return _Strict(raw, mode == "best_effort").run(optional_priority, compliant_msg)
    if mode == "lenient":
        stripped = raw.strip()
        if text is not None:
            if len(stripped) != len(raw):
                text = stripped.decode("utf-8")
            found = _fast(text, raw, True)
            if found is not None:
                return found
        return _parse_lenient(stripped, raw)
    raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
