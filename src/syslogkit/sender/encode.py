"""Record -> SyslogMessage -> bytes: the sender's one encoding step.

The level -> severity rule, the per-record overrides from `extra`, the `meta sequenceId`
numbering, the local time of `record.created`, and the choice between the codec's RFC 5424 header
template (the common record: no override, fits `max_size`) and the codec's full formatter.
No I/O but the local zone lookup of a moment (`zone_at`) and the pid for PROCID.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, Final, TypeVar

from syslogkit.codec.framing import frame
from syslogkit.codec.message import (
    Facility,
    SDElement,
    Severity,
    SyslogMessage,
    coerce_sd,
)
from syslogkit.codec.rfc3164 import format_3164
from syslogkit.codec.rfc5424 import HeaderTemplate, format_5424, with_sequence_id
from syslogkit.delivery.base import ErrorReporter, Stats

__all__ = [
    "OVERRIDES",
    "SEQUENCE_MAX",
    "RecordEncoder",
    "program_name",
    "severity_for_level",
    "to_datetime",
    "zone_at",
]

_T = TypeVar("_T")

#: The largest `meta sequenceId` (RFC 5424 §7.3.1); numbering starts again at 1 after it.
SEQUENCE_MAX: Final = 2147483647
#: Fields of `extra` that override the handler's settings for one record.
OVERRIDES: Final = ("facility", "severity", "msgid", "structured_data")
_SEVERITY_CACHE_MAX: Final = 256


def severity_for_level(levelno: int) -> Severity:
    """The syslog severity of a logging level (custom levels by range).

    CRITICAL (>= 50) crit, ERROR (>= 40) err, WARNING (>= 30) warning, >= 25 notice,
    INFO (>= 20) info, anything lower debug.
    """
    if levelno >= 50:
        return Severity.CRIT
    if levelno >= 40:
        return Severity.ERR
    if levelno >= 30:
        return Severity.WARNING
    if levelno >= 25:
        return Severity.NOTICE
    if levelno >= 20:
        return Severity.INFO
    return Severity.DEBUG


def program_name() -> str:
    """The running program's name (APP-NAME default): argv[0] without path and `.py`."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    name = os.path.basename(argv0)
    if name == "__main__.py":
        name = os.path.basename(os.path.dirname(argv0))
    name = name.removesuffix(".py")
    if not name or name in ("-c", "-m", "-"):
        name = os.path.basename(sys.executable) or "python"
    return name


_ZONES: dict[int, timezone] = {}


def zone_at(seconds: int) -> timezone:
    """The local zone's real UTC offset at a moment, as a fixed-offset timezone."""
    offset = time.localtime(seconds).tm_gmtoff
    zone = _ZONES.get(offset)
    if zone is None:
        zone = _ZONES[offset] = timezone(timedelta(seconds=offset))
    return zone


def to_datetime(created: float) -> datetime:
    """An aware datetime for `record.created`: microseconds and the local offset of then."""
    return datetime.fromtimestamp(created, zone_at(int(created)))


def merge_sd(static: tuple[SDElement, ...], extra: tuple[SDElement, ...]) -> tuple[SDElement, ...]:
    """Static SD plus a record's: a known SD-ID merges params (the record's win), new ones last."""
    if not extra:
        return static
    if not static:
        return extra
    by_id = {element.id: dict(element.params) for element in static}
    order = [element.id for element in static]
    for element in extra:
        if element.id not in by_id:
            by_id[element.id] = {}
            order.append(element.id)
        by_id[element.id].update(element.params)
    return tuple(SDElement(sd_id, tuple(by_id[sd_id].items())) for sd_id in order)


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


class RecordEncoder:
    """The bytes on the wire for a record whose MSG text is already formatted.

    Holds the header settings (facility, hostname, app_name, procid, msgid, static structured
    data), the format choice (`rfc` "5424" or "3164", `omit_hostname`, `max_size`, `bom`) and the
    framing (`framing` applied when `stream`). Counts `truncated` and `sd_dropped` in `stats`;
    an invalid override from `extra` is counted as an error, reported, and replaced by the
    setting. `numbers` yields the `meta sequenceId` values when `sequence_id` is on.
    """

    def __init__(
        self,
        *,
        facility: Facility,
        hostname: str,
        app_name: str,
        procid: str | None,
        msgid: str | None,
        structured_data: tuple[SDElement, ...],
        sequence_id: bool,
        rfc: str,
        omit_hostname: bool,
        max_size: int | None,
        bom: bool | str,
        framing: str | bytes,
        stream: bool,
        stats: Stats,
        report: ErrorReporter,
    ) -> None:
        self.facility = facility
        self.hostname = hostname
        self.app_name = app_name
        self.static_procid = procid
        self.msgid = msgid
        self.structured_data = structured_data
        self.sequence_id = sequence_id
        self.numbers: Iterator[int] = itertools.count(1)
        self.rfc = rfc
        self.omit_hostname = omit_hostname
        self.max_size = max_size
        self.bom = bom
        self.framing = framing
        self.stream = stream
        self.stats = stats
        self.report = report
        self._severities: dict[int, Severity] = {}
        self.template: HeaderTemplate | None = None
        self.refresh()

    @property
    def procid(self) -> str:
        """PROCID: the configured value, else the current pid."""
        return self.static_procid if self.static_procid is not None else str(os.getpid())

    def refresh(self) -> None:
        """Make the RFC 5424 header template (again: a forked child has its own pid)."""
        if self.rfc != "5424":
            return
        self.template = HeaderTemplate(
            facility=self.facility,
            hostname=self.hostname,
            app_name=self.app_name,
            procid=self.procid,
            msgid=self.msgid,
            structured_data=self.structured_data,
            sequence_id=self.sequence_id,
            bom=self.bom,
            max_size=self.max_size,
            zone_at=zone_at,
        )

    def severity(self, levelno: int) -> Severity:
        """`severity_for_level`, remembered per level."""
        found = self._severities.get(levelno)
        if found is None:
            found = severity_for_level(levelno)
            if len(self._severities) < _SEVERITY_CACHE_MAX:
                self._severities[levelno] = found
        return found

    def next_sequence(self) -> int:
        """The next `meta sequenceId`: 1..SEQUENCE_MAX, then 1 again."""
        return (next(self.numbers) - 1) % SEQUENCE_MAX + 1

    def encode(self, record: logging.LogRecord, text: str) -> bytes:
        """The bytes for a record with MSG `text` (framed on streams)."""
        sequence = self.next_sequence() if self.sequence_id else None
        payload = None
        fields = record.__dict__
        if self.template is not None and not (
            "facility" in fields
            or "severity" in fields
            or "msgid" in fields
            or "structured_data" in fields
        ):
            levelno = record.levelno
            severity = self._severities.get(levelno) or self.severity(levelno)  # never 0 (emerg)
            payload = self.template.render(severity, record.created, text, sequence)
        if payload is None:
            payload = self.format(self.to_message(record, text, sequence=sequence))
        return frame(payload, self.framing) if self.stream else payload

    def to_message(
        self, record: logging.LogRecord, text: str, *, sequence: int | None = None
    ) -> SyslogMessage:
        """The SyslogMessage for a record with MSG `text`; `sequence` the `meta sequenceId`
        (else the next one, when the encoder numbers its records)."""
        facility, severity = self.facility, self.severity(record.levelno)
        msgid = self.msgid
        sd = self.structured_data
        fields = record.__dict__
        if "facility" in fields:
            facility = self._override(record, "facility", Facility.coerce, facility)
        if "severity" in fields:
            severity = self._override(record, "severity", Severity.coerce, severity)
        if "msgid" in fields:
            msgid = self._override(record, "msgid", _optional_str, msgid)
        if "structured_data" in fields:
            sd = merge_sd(sd, self._override(record, "structured_data", coerce_sd, ()))
        if self.sequence_id:
            number = sequence if sequence is not None else self.next_sequence()
            sd = with_sequence_id(sd, number)
        return SyslogMessage(
            facility=facility,
            severity=severity,
            version=None if self.rfc == "3164" else 1,
            timestamp=to_datetime(record.created),
            hostname=self.hostname,
            app_name=self.app_name,
            procid=self.procid,
            msgid=msgid,
            structured_data=sd,
            msg=text,
        )

    def format(self, msg: SyslogMessage) -> bytes:
        """The codec's output for a message, counting truncation and dropped SD."""
        if self.rfc == "3164":
            return self._format_3164(msg)
        report: dict[str, int] = {}
        out = format_5424(msg, max_size=self.max_size, bom=self.bom, report=report)
        if report.get("truncated"):
            self.stats.add("truncated")
        if report.get("sd_dropped"):
            self.stats.add("sd_dropped", report["sd_dropped"])
        return out

    def _format_3164(self, msg: SyslogMessage) -> bytes:
        out = format_3164(msg, self.omit_hostname)
        if self.max_size is not None and len(out) > self.max_size:
            self.stats.add("truncated")
            out = format_3164(msg, self.omit_hostname, max_size=self.max_size)
        return out

    def _override(
        self, record: logging.LogRecord, name: str, coerce: Callable[[Any], _T], default: _T
    ) -> _T:
        """A per-record field from `extra`, or the default (reported) when it is invalid."""
        try:
            return coerce(record.__dict__[name])
        except (TypeError, ValueError) as exc:
            self.stats.error(exc)
            self.report(ValueError(f"extra {name!r}: {exc}"), record)
            return default
