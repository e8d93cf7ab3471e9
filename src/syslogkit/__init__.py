"""syslogkit: Python logging to syslog, a syslog codec, and a collector.

The public names are imported when first used (PEP 562), so a command that only reads a store
(`syslogkit query`) does not pay for the sender's import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from syslogkit._version import __version__

if TYPE_CHECKING:
    from syslogkit.codec.detect import parse
    from syslogkit.codec.framing import FrameDecoder, FramingError, frame
    from syslogkit.codec.message import Facility, ParseError, SDElement, Severity, SyslogMessage
    from syslogkit.codec.rfc3164 import format_3164, parse_3164
    from syslogkit.codec.rfc5424 import format_5424, parse_5424
    from syslogkit.sender.handler import SyslogHandler

#: public name -> the module that defines it
_HOMES: dict[str, str] = {
    "parse": "syslogkit.codec.detect",
    "FrameDecoder": "syslogkit.codec.framing",
    "FramingError": "syslogkit.codec.framing",
    "frame": "syslogkit.codec.framing",
    "Facility": "syslogkit.codec.message",
    "ParseError": "syslogkit.codec.message",
    "SDElement": "syslogkit.codec.message",
    "Severity": "syslogkit.codec.message",
    "SyslogMessage": "syslogkit.codec.message",
    "format_3164": "syslogkit.codec.rfc3164",
    "parse_3164": "syslogkit.codec.rfc3164",
    "format_5424": "syslogkit.codec.rfc5424",
    "parse_5424": "syslogkit.codec.rfc5424",
    "SyslogHandler": "syslogkit.sender.handler",
}

__all__ = [
    "Facility",
    "FrameDecoder",
    "FramingError",
    "ParseError",
    "SDElement",
    "Severity",
    "SyslogHandler",
    "SyslogMessage",
    "__version__",
    "format_3164",
    "format_5424",
    "frame",
    "parse",
    "parse_3164",
    "parse_5424",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'syslogkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
