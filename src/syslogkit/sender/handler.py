"""SyslogHandler: Python `logging` records to syslog over UDP, TCP, TLS and unix sockets.

record -> SyslogMessage (this module) -> bytes (rfc5424/rfc3164) -> frame (framing) ->
delivery (delivery.py) -> transport (transports/).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Final, TypeVar, Union

from syslogkit.codec.framing import frame
from syslogkit.codec.message import (
    Facility,
    SDElement,
    Severity,
    StructuredDataInput,
    SyslogMessage,
    coerce_sd,
)
from syslogkit.codec.rfc3164 import format_3164
from syslogkit.codec.rfc5424 import format_5424, format_timestamp
from syslogkit.delivery.base import REENTRANT_MAX, Stats, reset_after_fork
from syslogkit.delivery.sync import make_delivery
from syslogkit.transports.address import Address, AddressInput, parse_address
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.base import make_transport
from syslogkit.transports.failover import FailoverTransport
from syslogkit.transports.tls import TLSConfig

__all__ = [
    "SyslogHandler",
    "program_name",
    "severity_for_level",
    "to_datetime",
]

_T = TypeVar("_T")

SEQUENCE_MAX: Final = 2147483647
#: Fields of `extra` that override the handler's settings for one record.
OVERRIDES: Final = ("facility", "severity", "msgid", "structured_data")
_MARK_US: Final = 123456
_PRI_CACHE_MAX: Final = 256

SizeOption = Union[int, str, None]  # noqa: UP007 (a runtime alias on Python 3.10)


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


def _zone_at(seconds: int) -> timezone:
    """The local zone's real UTC offset at a moment, as a fixed-offset timezone."""
    offset = time.localtime(seconds).tm_gmtoff
    zone = _ZONES.get(offset)
    if zone is None:
        zone = _ZONES[offset] = timezone(timedelta(seconds=offset))
    return zone


def to_datetime(created: float) -> datetime:
    """An aware datetime for `record.created`: microseconds and the local offset of then."""
    return datetime.fromtimestamp(created, _zone_at(int(created)))


def _timestamp_parts(seconds: int) -> tuple[int, str, str] | None:
    """The codec's timestamp text for a second, split around the microseconds.

    (seconds, text before, text after), or None when the codec does not write six digits.
    """
    moment = datetime.fromtimestamp(seconds, _zone_at(seconds)).replace(microsecond=_MARK_US)
    head, mark, tail = format_timestamp(moment).partition(str(_MARK_US))
    return (seconds, head, tail) if mark else None


class _Guard(threading.local):
    """Per thread: is an emit of this handler running, and what was logged from inside it."""

    def __init__(self) -> None:
        self.busy = False
        self.pending: list[logging.LogRecord] = []


def _coerce_rfc(rfc: str | int | None, address: Address) -> tuple[str, bool]:
    """('5424' | '3164', omit_hostname) from the option and the transport."""
    if rfc is None:
        return ("3164", True) if address.is_unix else ("5424", False)
    text = str(rfc).strip().lower().removeprefix("rfc")
    if text == "local":
        return "3164", True
    if text not in ("5424", "3164"):
        raise ValueError(f"rfc must be '5424', '3164' or 'local', not {rfc!r}")
    return text, text == "3164" and address.is_unix


def _default_max_size(rfc: str, address: Address) -> int:
    """DESIGN.md: 2048 for RFC 5424 over UDP, 1024 for RFC 3164 over UDP, else 8192."""
    if address.scheme == "udp":
        return 2048 if rfc == "5424" else 1024
    return 8192


def _coerce_max_size(value: SizeOption, rfc: str, address: Address) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in ("auto", "default"):
            return _default_max_size(rfc, address)
        if value.strip().lower() == "none":
            return None
        value = int(value)
    if isinstance(value, bool) or value < 64:
        raise ValueError(f"max_size must be None, 'auto' or an int >= 64, not {value!r}")
    return value


def _coerce_bom(value: bool | str) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"bom must be 'auto', True or False, not {value!r}")


def _merge_sd(static: tuple[SDElement, ...], extra: tuple[SDElement, ...]) -> tuple[SDElement, ...]:
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


def _with_sequence(sd: tuple[SDElement, ...], number: int) -> tuple[SDElement, ...]:
    """`meta sequenceId` added (into an existing meta element, or as a new last element)."""
    for index, element in enumerate(sd):
        if element.id == "meta":
            params = tuple(p for p in element.params if p[0] != "sequenceId")
            merged = SDElement("meta", (*params, ("sequenceId", str(number))))
            return (*sd[:index], merged, *sd[index + 1 :])
    return (*sd, SDElement("meta", (("sequenceId", str(number)),)))


class SyslogHandler(logging.Handler):
    """A logging handler that sends records to a syslog collector or the local daemon.

    `address` is a URL (`udp://host:514`, `tcp://`, `tls://host:6514`, `unix:///dev/log`,
    `unix+stream:///path`), a stdlib form (`("host", 514)` with `socktype`, a path) or None
    (`/dev/log` where it exists, else `udp://localhost:514`). Nothing connects until the first
    record; `emit()` never raises; `stats` counts what happened.

    RFC 5424 is sent on the network and the local format (RFC 3164 without HOSTNAME) on unix
    sockets, unless `rfc` says otherwise. Per record, `extra` may set `facility`, `severity`,
    `msgid` and `structured_data` (merged with the handler's static `structured_data`).

    `delivery="background"` (the default on network addresses) hands frames to a writer thread;
    `delivery="sync"` (the default on unix sockets) writes in the logging thread, every wait
    bounded by `timeout`.

    Options (all plain values, for `dictConfig`):
    facility, app_name, hostname, procid, msgid, structured_data -- header defaults;
    sequence_id -- number records with `[meta sequenceId=...]`;
    rfc -- "5424", "3164" or "local"; framing -- "octet", "lf", "nul", "crlf" or a trailer;
    max_size -- byte limit before framing ("auto": 2048 UDP/5424, 1024 UDP/3164, else 8192);
    bom -- "auto", True, False; timeout -- seconds for resolve+connect, handshake, each write;
    ca_file, ca_dir, cert_file, key_file, key_password, server_hostname, verify_hostname,
    fingerprint (pins replace CA checks), ssl_context, confirm_timeout -- TLS;
    queue_size, overflow ("drop_newest"/"drop_oldest"), spool_dir, spool_max_bytes --
    background delivery (also as `delivery_options={...}`, with batch_bytes);
    failover -- more addresses of the same scheme, used in turn; relp_window -- RELP window;
    backoff_initial, backoff_max -- reconnect waits; error_interval -- handleError rate limit.
    """

    def __init__(
        self,
        address: AddressInput = None,
        *,
        facility: int | str = "user",
        app_name: str | None = None,
        hostname: str | None = None,
        procid: str | int | None = None,
        msgid: str | None = None,
        structured_data: StructuredDataInput = None,
        sequence_id: bool = False,
        rfc: str | int | None = None,
        framing: str | bytes = "octet",
        max_size: SizeOption = "auto",
        bom: bool | str = "auto",
        timeout: float = 5.0,
        socktype: int | str | None = None,
        ca_file: str | None = None,
        ca_dir: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        key_password: str | None = None,
        server_hostname: str | None = None,
        verify_hostname: bool = True,
        fingerprint: str | Iterable[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        confirm_timeout: float = 0.5,
        delivery: str | None = None,
        queue_size: int | None = None,
        overflow: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int | None = None,
        delivery_options: Mapping[str, Any] | None = None,
        failover: Sequence[AddressInput] = (),
        relp_window: int = 128,
        backoff_initial: float = 0.1,
        backoff_max: float = 30.0,
        error_interval: float = 30.0,
        level: int | str = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.address = parse_address(address, socktype)
        self._relp = self.address.scheme in ("relp", "relp+tls")
        if delivery is None:  # DESIGN.md: background on the network, in the caller on unix sockets
            delivery = "sync" if self.address.is_unix else "background"
        if self._relp and delivery != "background":
            raise ValueError("RELP needs delivery='background' (acknowledgements are read there)")
        background_options = _background_options(
            queue_size=queue_size,
            overflow=overflow,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
            delivery_options=delivery_options,
        )
        if background_options and delivery != "background":
            raise ValueError(f"{', '.join(background_options)}: only with delivery='background'")
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        self.facility = Facility.coerce(facility)
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.app_name = app_name if app_name is not None else program_name()
        self._static_procid = None if procid is None else str(procid)
        self.msgid = msgid
        self.structured_data = coerce_sd(structured_data)
        self.sequence_id = bool(sequence_id)
        self._sequence = itertools.count(1)
        self.rfc, self.omit_hostname = _coerce_rfc(rfc, self.address)
        self.framing = framing
        self.max_size = _coerce_max_size(max_size, self.rfc, self.address)
        self.bom = _coerce_bom(bom)
        self.timeout = float(timeout)
        self.error_interval = float(error_interval)
        self._next_report = 0.0
        self._stream = self.address.is_stream and not self._relp  # RELP frames by itself
        if self._stream:
            frame(b"x", framing)  # refuse an unknown framing now, not on the log path
        addresses = [self.address, *(parse_address(a, socktype) for a in failover)]
        if any(a.scheme != self.address.scheme for a in addresses):
            raise ValueError("failover addresses must use the scheme of the first address")
        if len(addresses) > 1 and not self.address.is_stream:
            raise ValueError("failover needs stream addresses (tcp, tls, relp, unix+stream)")

        def tls_for(where: Address) -> TLSConfig | None:
            if where.scheme not in ("tls", "relp+tls"):
                return None
            return TLSConfig.create(
                where.host,
                ca_file=ca_file,
                ca_dir=ca_dir,
                cert_file=cert_file,
                key_file=key_file,
                key_password=key_password,
                server_hostname=server_hostname,
                verify_hostname=verify_hostname,
                fingerprint=fingerprint,
                ssl_context=ssl_context,
                confirm_timeout=confirm_timeout,
            )

        transports = [
            make_transport(
                where,
                timeout=self.timeout,
                backoff=Backoff(backoff_initial, backoff_max),
                tls=tls_for(where),
                window=relp_window,
            )
            for where in addresses
        ]
        transport = transports[0] if len(transports) == 1 else FailoverTransport(transports)
        self._stats = Stats()
        self._delivery = make_delivery(
            delivery, transport, self._stats, self._report, **background_options
        )
        self._guard = _Guard()
        self._stamp: tuple[int, str, str] | None = None
        self._prepare()
        reset_after_fork(self)

    # -- public --------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: sent, dropped (+ dropped_<reason>), errors, reconnects, truncated,
        sd_dropped, and the text of the last error."""
        return self._stats.snapshot()

    @property
    def procid(self) -> str:
        """PROCID: the configured value, else the current pid."""
        return self._static_procid if self._static_procid is not None else str(os.getpid())

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit, without holding the handler lock across the network write.

        Delivery serialises writes with its own lock, whose waits are bounded.
        """
        verdict: object = self.filter(record)
        if isinstance(verdict, logging.LogRecord):
            record = verdict
        if verdict:
            self.emit(record)
        return bool(verdict)

    def emit(self, record: logging.LogRecord) -> None:
        """Format, frame and deliver one record. Never raises."""
        guard = self._guard
        if guard.busy:
            self._defer(guard, record)
            return
        guard.busy = True
        try:
            try:
                data = self.encode(record)
            except Exception as exc:
                self._encode_failed(exc, record)
            else:
                self._delivery.deliver(data, record)
            if guard.pending:
                self._emit_deferred(guard)
        finally:
            guard.busy = False

    def to_message(
        self, record: logging.LogRecord, text: str | None = None, *, sequence: int | None = None
    ) -> SyslogMessage:
        """The SyslogMessage for a record.

        `text` is the formatted MSG (else formatted here); `sequence` the `meta sequenceId`
        (else the next one, when the handler numbers its records).
        """
        if text is None:
            text = self.format(record)
        facility, severity = self.facility, severity_for_level(record.levelno)
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
            sd = _merge_sd(sd, self._override(record, "structured_data", coerce_sd, ()))
        if self.sequence_id:
            sd = _with_sequence(sd, sequence if sequence is not None else self._next_sequence())
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

    def encode(self, record: logging.LogRecord) -> bytes:
        """The bytes that go on the wire for a record (framed on streams)."""
        text = self.format(record)
        sequence = self._next_sequence() if self.sequence_id else None
        payload = None
        if self._fast_head is not None:
            fields = record.__dict__
            if not (
                "facility" in fields
                or "severity" in fields
                or "msgid" in fields
                or "structured_data" in fields
            ):
                payload = self._fast_5424(record, text, sequence)
        if payload is None:
            payload = self._format(self.to_message(record, text, sequence=sequence))
        return frame(payload, self.framing) if self._stream else payload

    def flush(self, timeout: float | None = None) -> None:
        """Wait (bounded) until handed-over records are written."""
        self._delivery.flush(self._bounded(timeout))

    def close(self, timeout: float | None = None) -> None:
        """Close the connection (TLS close_notify) within `timeout` seconds (bounded default)."""
        try:
            self._delivery.close(self._bounded(timeout))
        finally:
            super().close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address} ({logging.getLevelName(self.level)})>"

    # -- emit internals ------------------------------------------------------------------------

    def _emit_one(self, record: logging.LogRecord) -> None:
        try:
            data = self.encode(record)
        except Exception as exc:
            self._encode_failed(exc, record)
            return
        self._delivery.deliver(data, record)

    def _encode_failed(self, exc: Exception, record: logging.LogRecord) -> None:
        """A record that could not be formatted: dropped, counted, reported."""
        self._stats.drop("format")
        self._stats.error(exc)
        self._report(exc, record)

    def _defer(self, guard: _Guard, record: logging.LogRecord) -> None:
        """A record logged from inside our own send path: emit it after the outer one."""
        if len(guard.pending) < REENTRANT_MAX:
            guard.pending.append(record)
        else:
            self._stats.drop("reentrant")

    def _emit_deferred(self, guard: _Guard) -> None:
        """Emit what was logged re-entrantly, at most REENTRANT_MAX records (no endless chain)."""
        for _ in range(REENTRANT_MAX):
            if not guard.pending:
                return
            self._emit_one(guard.pending.pop(0))
        if guard.pending:
            self._stats.drop("reentrant", len(guard.pending))
            guard.pending.clear()

    def _report(self, exc: BaseException, record: logging.LogRecord | None) -> None:
        """handleError, at most once per `error_interval` seconds."""
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + self.error_interval
        if record is None:
            record = logging.LogRecord("syslogkit", logging.ERROR, "", 0, str(exc), None, None)
        try:
            raise exc
        except BaseException:
            self.handleError(record)

    def _override(
        self, record: logging.LogRecord, name: str, coerce: Callable[[Any], _T], default: _T
    ) -> _T:
        """A per-record field from `extra`, or the default (reported) when it is invalid."""
        try:
            return coerce(getattr(record, name))
        except (TypeError, ValueError) as exc:
            self._stats.error(exc)
            self._report(ValueError(f"extra {name!r}: {exc}"), record)
            return default

    def _next_sequence(self) -> int:
        return (next(self._sequence) - 1) % SEQUENCE_MAX + 1

    # -- encoding ------------------------------------------------------------------------------

    def _format(self, msg: SyslogMessage) -> bytes:
        """The codec's output for a message, counting truncation and dropped SD."""
        if self.rfc == "3164":
            return self._format_3164(msg)
        report: dict[str, int] = {}
        out = format_5424(msg, max_size=self.max_size, bom=self.bom, report=report)
        if report.get("truncated"):
            self._stats.add("truncated")
        if report.get("sd_dropped"):
            self._stats.add("sd_dropped", report["sd_dropped"])
        return out

    def _format_3164(self, msg: SyslogMessage) -> bytes:
        out = format_3164(msg, self.omit_hostname)
        if self.max_size is not None and len(out) > self.max_size:
            self._stats.add("truncated")
            out = format_3164(msg, self.omit_hostname, max_size=self.max_size)
        return out

    def _prepare(self) -> None:
        """Cache the static header parts the codec makes, for the RFC 5424 fast path."""
        self._fast_head: str | None = None
        self._prefixes: dict[int, str] = {}
        if self.rfc != "5424":
            return
        base = SyslogMessage(
            facility=self.facility,
            severity=Severity.INFO,
            version=1,
            timestamp=None,
            hostname=self.hostname,
            app_name=self.app_name,
            procid=self.procid,
            msgid=self.msgid,
            structured_data=(),
            msg=None,
        )
        plain = format_5424(base).decode("utf-8").rstrip(" ")
        sd_text = format_5424(replace(base, structured_data=self.structured_data))
        with_sd = sd_text.decode("utf-8").rstrip(" ")
        lead = plain.find(" - ")  # after "<PRI>1" and the nil timestamp
        if lead < 0 or not plain.endswith(" -") or not with_sd.startswith(plain[:-1]):
            return
        head = plain[lead + 2 : -1]  # " HOST APP PROCID MSGID " as the codec writes them
        static_sd = with_sd[len(plain) - 1 :]
        if not self.sequence_id:
            self._fast_head = head + static_sd + " "
        elif not any(element.id == "meta" for element in self.structured_data):
            self._fast_head = head + static_sd if self.structured_data else head

    def _prefix(self, levelno: int) -> str:
        """`<PRI>1 ` for a level, made by the codec once per level."""
        prefix = self._prefixes.get(levelno)
        if prefix is None:
            probe = SyslogMessage(
                facility=self.facility, severity=severity_for_level(levelno), version=1
            )
            out = format_5424(probe).decode("utf-8")
            prefix = out[: out.index(" ") + 1]
            if len(self._prefixes) < _PRI_CACHE_MAX:
                self._prefixes[levelno] = prefix
        return prefix

    def _fast_5424(
        self, record: logging.LogRecord, text: str, sequence: int | None
    ) -> bytes | None:
        """RFC 5424 bytes from the codec's cached header parts, in one str format and one
        encode; None when the codec must do it (size limit, odd text, second boundary...)."""
        middle = self._fast_head
        if middle is None or not text:
            return None
        created = record.created
        seconds = int(created)
        micros = round((created - seconds) * 1e6)
        stamp = self._stamp
        if stamp is None or stamp[0] != seconds:
            stamp = self._stamp = _timestamp_parts(seconds)
            if stamp is None:
                self._fast_head = None  # the codec's timestamps cannot be spliced: no fast path
                return None
        if micros > 999_999:
            return None
        if sequence is not None:
            middle = f'{middle}[meta sequenceId="{sequence}"] '
        bom = self.bom
        if bom is True or (bom and not text.isascii()):
            text = "\ufeff" + text  # UTF-8: EF BB BF
        prefix = self._prefixes.get(record.levelno) or self._prefix(record.levelno)
        parts = (prefix, stamp[1], micros, stamp[2], middle, text)
        try:
            payload = ("%s%s%06d%s%s%s" % parts).encode()  # noqa: UP031 (the fastest way here)
        except UnicodeEncodeError:
            return None
        if self.max_size is not None and len(payload) > self.max_size:
            return None
        return payload

    # -- lifecycle -----------------------------------------------------------------------------

    def _bounded(self, timeout: float | None) -> float:
        return min(self.timeout, 2.0) if timeout is None else max(0.0, timeout)

    def after_fork_in_child(self) -> None:
        """In a forked child: own socket, own locks, the child's pid in PROCID."""
        self._guard = _Guard()
        self._next_report = 0.0
        self._delivery.after_fork_in_child()
        self._prepare()


def _background_options(
    *, delivery_options: Mapping[str, Any] | None, **options: object
) -> dict[str, Any]:
    """The background delivery's options: the handler's keywords over `delivery_options`."""
    merged = dict(delivery_options or {})
    merged.update((key, value) for key, value in options.items() if value is not None)
    return merged


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
