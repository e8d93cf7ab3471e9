"""RFC 3164 (BSD syslog): a formatter, and a parser for the variants real senders produce.

Split by job: `formatting` (`format_3164`) and `parsing` (`parse_3164`).

Sans-I/O: bytes and values in, bytes and values out. The one clock read is
`default_reference()`, used only when a BSD timestamp (which has no year and no zone) is parsed
without a `reference`; pass `reference=` to bypass it.

Wire format written by `format_3164`::

    <PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG      (network)
    <PRI>Mmm dd hh:mm:ss TAG[PID]: MSG               (omit_hostname=True: what glibc's
                                                     syslog() writes to /dev/log)

Decisions (each named where it applies below):

- TAG is cut to 32 characters (RFC 3164 §4.1.3: "MUST NOT exceed 32 characters"); the PID is not
  part of TAG (§5.3) and is cut to the RFC 5424 PROCID limit (128).
- A TAG is recognised by its terminator: `name:`, `name[pid]:` or `name[pid]` (§5.3). A bare word
  after HOSTNAME is CONTENT, not TAG: RFC 3164 §5.4 Example 2 (`<13>Feb  5 17:32:18 10.0.0.99
  Use the BFG!` has no TAG; so does any message whose header a relay inserted, §4.3.2).
- HOSTNAME is absent (None) when the first word after the timestamp is already a TAG (OpenBSD
  syslogd, HAProxy, `/dev/log` messages).
- Year and zone of a BSD timestamp come from `reference` with December/January rollover.
- Structured data after the TAG (rsyslog's `[origin ...]`) is taken only when it is one or more
  well-formed RFC 5424 SD-ELEMENTs whose SD-IDs are valid by RFC 5424 §6.3.2 (IANA-registered
  `timeQuality`/`origin`/`meta`, or `name@digits`) followed by a space or the end; anything
  else (iptables prefixes, Apache fields) stays in MSG.
- Cisco IOS prefixes are parsed only on request (`cisco=`), because numeric prefixes cannot be
  told apart by value alone: see `parse_3164`.
"""

from syslogkit.codec.rfc3164.formatting import TAG_MAX, format_3164, sanitize_hostname, sanitize_tag
from syslogkit.codec.rfc3164.parsing import CISCO_COMPONENTS, default_reference, parse_3164

__all__ = [
    "CISCO_COMPONENTS",
    "TAG_MAX",
    "default_reference",
    "format_3164",
    "parse_3164",
    "sanitize_hostname",
    "sanitize_tag",
]
