"""syslogkit: Python logging to syslog, a syslog codec, and a collector."""

from syslogkit._version import __version__
from syslogkit.codec.detect import parse
from syslogkit.codec.framing import FrameDecoder, FramingError, frame
from syslogkit.codec.message import Facility, ParseError, SDElement, Severity, SyslogMessage
from syslogkit.codec.rfc3164 import format_3164, parse_3164
from syslogkit.codec.rfc5424 import format_5424, parse_5424
from syslogkit.sender.handler import SyslogHandler

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
