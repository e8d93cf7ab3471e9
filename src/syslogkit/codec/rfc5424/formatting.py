r"""RFC 5424 formatting: a SyslogMessage to bytes.

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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from syslogkit.codec._rfc3339 import format_timestamp
from syslogkit.codec.message import Facility, SDElement, Severity, SyslogMessage
from syslogkit.codec.rfc5424.grammar import APP_NAME, HOSTNAME, MSGID, PROCID, SD_NAME, VERSION_MAX
from syslogkit.codec.text import cut_utf8

__all__ = ["format_5424", "format_sd", "sanitize_field"]

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
    clean = clean[:SD_NAME] or "-"
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


def format_sd(elements: Iterable[SDElement]) -> str:
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
    elif not (0 < version <= VERSION_MAX):
        raise ValueError(f"RFC 5424 VERSION must be 1..{VERSION_MAX}, not {version!r}")
    if bom != "auto" and bom is not True and bom is not False:
        raise ValueError(f'bom must be "auto", True or False, not {bom!r}')
    head = (
        f"<{(facility << 3) | severity}>{version} {format_timestamp(msg.timestamp)} "
        f"{sanitize_field(msg.hostname, HOSTNAME)} {sanitize_field(msg.app_name, APP_NAME)} "
        f"{sanitize_field(msg.procid, PROCID)} {sanitize_field(msg.msgid, MSGID)} "
    )
    elements = msg.structured_data
    sd = format_sd(elements) if elements else "-"
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
    body = cut_utf8(text.encode("utf-8", "replace"), room) if text and room > 0 else b""
    if not body and (text or room < 0):
        return fixed  # no byte of MSG fits: leave MSG (and its BOM) out
    return fixed + lead + body
