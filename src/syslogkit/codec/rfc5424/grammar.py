"""What the RFC 5424 formatter and the three parsers share: field limits, the BOM, the SD-NAME
and PARAM-VALUE patterns, and the §6.3.3 unescaping rule."""

from __future__ import annotations

import re
from typing import Final

from syslogkit.codec.message import LIMITS

__all__ = [
    "APP_NAME",
    "BOM",
    "DIGITS",
    "HOSTNAME",
    "MSGID",
    "NAME_RE",
    "PRI_MAX",
    "PROCID",
    "SD_NAME",
    "SECFRAC",
    "VALUE_RE",
    "VERSION_MAX",
    "unescape",
]

HOSTNAME: Final = LIMITS["hostname"]
APP_NAME: Final = LIMITS["app_name"]
PROCID: Final = LIMITS["procid"]
MSGID: Final = LIMITS["msgid"]
SD_NAME: Final = LIMITS["sd_name"]
PRI_MAX: Final = LIMITS["pri_max"]
VERSION_MAX: Final = LIMITS["version_max"]
SECFRAC: Final = LIMITS["secfrac_digits"]

#: The UTF-8 byte order mark that starts a MSG-UTF8.
BOM: Final = b"\xef\xbb\xbf"
DIGITS: Final = b"0123456789"

_NAME_CLASS: Final = r"[!#-<>-\\^-~]"  # PRINTUSASCII except '"' (34), '=' (61), ']' (93)
#: An SD-ID or PARAM-NAME (regex text).
NAME_RE: Final = _NAME_CLASS + "{1," + str(SD_NAME) + "}"
#: A PARAM-VALUE between its quotes: escape pairs; '"', '\', ']' only escaped (regex text).
VALUE_RE: Final = r'[^"\\\]]*+(?:\\.[^"\\\]]*+)*+'

_unescape_sub: Final = re.compile(r'\\([\\"\]])').sub


def unescape(value: str) -> str:
    """RFC 5424 §6.3.3: `\\"`, `\\\\`, `\\]` lose their backslash; other pairs stay as written."""
    return _unescape_sub(r"\1", value) if "\\" in value else value
