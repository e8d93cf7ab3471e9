"""RFC 5424 syslog: format a SyslogMessage to bytes, parse it back (strict, best-effort, lenient).

Split by job: `formatting` (`format_5424`, the ABNF-fitting rules), `header` (`HeaderTemplate`,
`format_5424`'s output for a sender's many messages from cached text), `parsing` (`parse_5424`
and its modes) over `fast` (one regex for valid input), `scanner` (the strict grammar byte by
byte, for faults) and `lenient`; `grammar` holds what they share. Sans-I/O.
"""

from syslogkit.codec._rfc3339 import format_timestamp
from syslogkit.codec.rfc5424.formatting import format_5424, sanitize_field
from syslogkit.codec.rfc5424.header import HeaderTemplate, with_sequence_id
from syslogkit.codec.rfc5424.parsing import MODES, parse_5424

__all__ = [
    "MODES",
    "HeaderTemplate",
    "format_5424",
    "format_timestamp",
    "parse_5424",
    "sanitize_field",
    "with_sequence_id",
]
