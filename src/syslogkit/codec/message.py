"""Typed syslog messages: facility, severity, structured data, the message itself.

Sans-I/O: nothing here reads the clock, the environment or a socket.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

__all__ = [
    "LIMITS",
    "NILVALUE",
    "Facility",
    "ParseError",
    "SDElement",
    "Severity",
    "StructuredDataInput",
    "SyslogMessage",
    "build_message",
    "coerce_sd",
]

NILVALUE: Final = "-"

#: Every length and range limit of the protocol, in one table (RFC 5424 §6).
LIMITS: Final[Mapping[str, int]] = {
    "hostname": 255,
    "app_name": 48,
    "procid": 128,
    "msgid": 32,
    "sd_name": 32,
    "pri_max": 191,
    "version_max": 999,
    "secfrac_digits": 6,
}


def _looks_pre_shifted(kind: str, value: object, maximum: int) -> bool:
    """A facility given as `code << 3`, as the stdlib `syslog` module's LOG_* constants are."""
    if kind != "facility" or not isinstance(value, int) or isinstance(value, bool):
        return False
    return value > maximum and value % 8 == 0 and value // 8 <= maximum


def _refuse_shifted(kind: str, value: object, maximum: int) -> ValueError:
    """The error for an out-of-range facility/severity, naming the pre-shift mistake."""
    if _looks_pre_shifted(kind, value, maximum):
        code = int(value) // 8  # type: ignore[call-overload]  # an int, checked above
        return ValueError(
            f"facility {value} looks pre-shifted (syslog.LOG_* facilities are code << 3); "
            f"pass {code} or Facility.{Facility(code).name}"
        )
    return ValueError(f"{value!r} is not a valid syslog {kind} (0..{maximum} or a name)")


class Facility(enum.IntEnum):
    """Syslog facility with the RFC 5424 numbers (0..23)."""

    KERN = 0
    USER = 1
    MAIL = 2
    DAEMON = 3
    AUTH = 4
    SYSLOG = 5
    LPR = 6
    NEWS = 7
    UUCP = 8
    CRON = 9
    AUTHPRIV = 10
    FTP = 11
    NTP = 12
    AUDIT = 13
    ALERT = 14
    CLOCK = 15
    LOCAL0 = 16
    LOCAL1 = 17
    LOCAL2 = 18
    LOCAL3 = 19
    LOCAL4 = 20
    LOCAL5 = 21
    LOCAL6 = 22
    LOCAL7 = 23

    @classmethod
    def _missing_(cls, value: object) -> Facility:
        raise _refuse_shifted("facility", value, 23)

    @classmethod
    def coerce(cls, value: int | str | Facility) -> Facility:
        """A Facility from a member, its number, or a text name (`local0`, `security`, ...)."""
        if isinstance(value, str):
            found = _FACILITY_NAMES.get(value.strip().lower())
            if found is None:
                raise ValueError(f"unknown syslog facility name {value!r}")
            return found
        if isinstance(value, bool):
            raise _refuse_shifted("facility", value, 23)
        return _FACILITY_BY_NUMBER[value] if type(value) is int and 0 <= value <= 23 else cls(value)


class Severity(enum.IntEnum):
    """Syslog severity with the RFC 5424 numbers (0 emergency .. 7 debug)."""

    EMERG = 0
    ALERT = 1
    CRIT = 2
    ERR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7

    @classmethod
    def _missing_(cls, value: object) -> Severity:
        raise _refuse_shifted("severity", value, 7)

    @classmethod
    def coerce(cls, value: int | str | Severity) -> Severity:
        """A Severity from a member, its number, or a text name (`err`, `warning`, `panic`, ...)."""
        if isinstance(value, str):
            found = _SEVERITY_NAMES.get(value.strip().lower())
            if found is None:
                raise ValueError(f"unknown syslog severity name {value!r}")
            return found
        if isinstance(value, bool):
            raise _refuse_shifted("severity", value, 7)
        return _SEVERITY_BY_NUMBER[value] if type(value) is int and 0 <= value <= 7 else cls(value)


_FACILITY_BY_NUMBER: Final = tuple(Facility)
_SEVERITY_BY_NUMBER: Final = tuple(Severity)

# logger(1)/glibc names, plus rsyslog's names for 12..15.
_FACILITY_NAMES: Final[dict[str, Facility]] = {f.name.lower(): f for f in Facility}
_FACILITY_NAMES["security"] = Facility.AUTH

_SEVERITY_NAMES: Final[dict[str, Severity]] = {s.name.lower(): s for s in Severity}
_SEVERITY_NAMES.update(
    emergency=Severity.EMERG,
    panic=Severity.EMERG,
    critical=Severity.CRIT,
    error=Severity.ERR,
    warn=Severity.WARNING,
    informational=Severity.INFO,
)


def facility_of(pri: int) -> Facility:
    """The facility of a PRI value (0..191)."""
    return _FACILITY_BY_NUMBER[pri >> 3]


def severity_of(pri: int) -> Severity:
    """The severity of a PRI value (0..191)."""
    return _SEVERITY_BY_NUMBER[pri & 7]


@dataclass(frozen=True, slots=True)
class SDElement:
    """One RFC 5424 SD-ELEMENT: an SD-ID and its (name, value) pairs in wire order."""

    id: str
    params: tuple[tuple[str, str], ...] = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of a parameter, or `default`."""
        for key, value in self.params:
            if key == name:
                return value
        return default

    def as_dict(self) -> dict[str, str]:
        """The parameters as a dict (a repeated name keeps its last value)."""
        return dict(self.params)


#: What callers may pass where structured data is expected.
StructuredDataInput = (
    Iterable[SDElement] | Mapping[str, Mapping[str, Any] | Iterable[tuple[str, Any]]] | None
)


def coerce_sd(value: StructuredDataInput) -> tuple[SDElement, ...]:
    """Normalise `{"id@32473": {"k": "v"}}`, SDElements or None to a tuple of SDElements."""
    if not value:
        return ()
    if isinstance(value, Mapping):
        out = []
        for sd_id, params in value.items():
            items = params.items() if isinstance(params, Mapping) else params
            out.append(SDElement(str(sd_id), tuple((str(k), str(v)) for k, v in items)))
        return tuple(out)
    result = tuple(value)
    for element in result:
        if not isinstance(element, SDElement):
            raise TypeError(f"structured data element {element!r} is not an SDElement")
    return result


@dataclass(slots=True)
class SyslogMessage:
    """A syslog message, RFC 5424 or RFC 3164, parsed or to be formatted.

    `None` in a field means absent (NILVALUE on the wire). `raw` holds the bytes the message was
    parsed from and takes no part in equality. `extra` holds variant-specific fields a parser
    found (Cisco message counters, ...).
    """

    facility: Facility | None = Facility.USER
    severity: Severity | None = Severity.NOTICE
    version: int | None = 1
    timestamp: datetime | None = None
    hostname: str | None = None
    app_name: str | None = None
    procid: str | None = None
    msgid: str | None = None
    structured_data: tuple[SDElement, ...] = ()
    msg: str | None = None
    bom: bool = False
    raw: bytes = field(default=b"", compare=False, repr=False)
    extra: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def pri(self) -> int | None:
        """The PRI value (facility * 8 + severity), or None when either is absent."""
        if self.facility is None or self.severity is None:
            return None
        return (self.facility << 3) | self.severity

    def sd_dict(self) -> dict[str, dict[str, str]]:
        """Structured data as `{sd_id: {name: value}}` (later duplicates win)."""
        out: dict[str, dict[str, str]] = {}
        for element in self.structured_data:
            out.setdefault(element.id, {}).update(element.params)
        return out


#: SyslogMessage's fields in the order `build_message` takes them.
_MESSAGE_FIELDS: Final = (
    "facility", "severity", "version", "timestamp", "hostname", "app_name", "procid", "msgid",
    "structured_data", "msg", "bom", "raw", "extra",
)  # fmt: skip


def _positional_builder() -> Callable[..., SyslogMessage]:
    """SyslogMessage from positional arguments (far cheaper than keywords), guarded against a
    reordering of its fields."""
    names = tuple(f.name for f in dataclasses.fields(SyslogMessage))
    if names[: len(_MESSAGE_FIELDS)] == _MESSAGE_FIELDS:
        return SyslogMessage

    def build(*args: Any) -> SyslogMessage:
        return SyslogMessage(**dict(zip(_MESSAGE_FIELDS, args, strict=True)))

    return build


#: `SyslogMessage(facility, severity, version, timestamp, hostname, app_name, procid, msgid,
#: structured_data, msg, bom, raw, extra)`, all thirteen positional: for the parsers' hot paths.
build_message: Final = _positional_builder()


class ParseError(ValueError):
    """A message that does not follow its grammar.

    `column` is the 1-based column (in bytes of the input) of the first fault; `partial` is the
    message as far as it parsed (best-effort mode), else None.
    """

    def __init__(self, reason: str, column: int, partial: SyslogMessage | None = None) -> None:
        super().__init__(f"{reason} (column {column})")
        self.reason = reason
        self.column = column
        self.partial = partial
