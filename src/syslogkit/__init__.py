"""syslogkit: Python logging to syslog, a syslog codec, and a collector."""

from syslogkit.framing import FrameDecoder, FramingError, frame
from syslogkit.handler import SyslogHandler
from syslogkit.message import Facility, ParseError, SDElement, Severity, SyslogMessage
from syslogkit.parse import parse
from syslogkit.rfc3164 import format_3164, parse_3164
from syslogkit.rfc5424 import format_5424, parse_5424

__all__ = [
    "Facility",
    "FrameDecoder",
    "FramingError",
    "ParseError",
    "SDElement",
    "Severity",
    "SyslogHandler",
    "SyslogMessage",
    "format_3164",
    "format_5424",
    "frame",
    "parse",
    "parse_3164",
    "parse_5424",
]

__version__ = "0.1.0"
