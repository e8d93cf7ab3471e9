r"""RFC 5424 parsing: bytes or str to a SyslogMessage, in three modes.

The regex fast path (`fast`) takes valid messages; the byte scanner (`scanner`) finds the
fault of the others, and `lenient` makes the best of them. Sans-I/O.

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

from typing import Final

from syslogkit.codec.message import SyslogMessage
from syslogkit.codec.rfc5424.fast import parse_fast
from syslogkit.codec.rfc5424.lenient import parse_lenient
from syslogkit.codec.rfc5424.scanner import StrictScanner

__all__ = ["MODES", "parse_5424"]

MODES: Final = ("strict", "best_effort", "lenient")


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
            found = parse_fast(text, raw, optional_priority)
            if found is not None:
                return found
        return StrictScanner(raw, mode == "best_effort").run(optional_priority, compliant_msg)
    if mode == "lenient":
        stripped = raw.strip()
        if text is not None:
            if len(stripped) != len(raw):
                text = stripped.decode("utf-8")
            found = parse_fast(text, raw, True)
            if found is not None:
                return found
        return parse_lenient(stripped, raw)
    raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
