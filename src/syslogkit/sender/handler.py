"""SyslogHandler: Python `logging` records to syslog over UDP, TCP, TLS, RELP and unix sockets.

The walk of a record: `handle` -> `emit` (re-entrancy guard) -> MSG text (the formatter's) ->
`sender.encode.RecordEncoder` (record -> bytes: the codec's header template or formatter,
framing) -> a `Delivery` (`delivery.sync` or `delivery.background`) -> a transport. The options
are turned into those parts once, by `sender.assemble`.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from threading import get_ident
from typing import Any

from syslogkit.codec.framing import frame
from syslogkit.codec.message import (
    Facility,
    SDElement,
    StructuredDataInput,
    SyslogMessage,
    coerce_sd,
)
from syslogkit.delivery.base import REENTRANT_MAX, Delivery, DeliveryNotice, Stats, reset_after_fork
from syslogkit.sender.assemble import (
    SizeOption,
    TLSOptions,
    background_options,
    build_transport,
    coerce_bom,
    coerce_max_size,
    coerce_rfc,
    delivery_kind,
    make_delivery,
)
from syslogkit.sender.encode import (
    OVERRIDES,
    SEQUENCE_MAX,
    RecordEncoder,
    program_name,
    severity_for_level,
    to_datetime,
)
from syslogkit.transports.address import AddressInput, parse_address
from syslogkit.transports.base import TransportError
from syslogkit.transports.schemes import SCHEMES

__all__ = [
    "OVERRIDES",
    "SEQUENCE_MAX",
    "SyslogHandler",
    "program_name",
    "severity_for_level",
    "to_datetime",
]


class _Guard:
    """Which threads are inside this handler's emit, and what each logged from inside it.

    Keyed by thread id rather than a `threading.local` (fewer lookups per record); a thread's
    entries go when its emit returns.
    """

    __slots__ = ("busy", "pending")

    def __init__(self) -> None:
        self.busy: set[int] = set()
        self.pending: dict[int, list[logging.LogRecord]] = {}


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
    queue_size, overflow ("drop_newest"/"drop_oldest"), spool_dir, spool_max_bytes,
    block_timeout, shed_below (None: no shedding), shutdown_stall, shutdown_max --
    background delivery (also as `delivery_options={...}`, with batch_bytes, high_water);
    failover -- more addresses of the same scheme, used in turn; relp_window -- RELP window;
    backoff_initial, backoff_max -- reconnect waits; error_interval -- handleError rate limit.

    The header and format settings are read-only attributes (`facility`, `rfc`, `max_size`, ...);
    `encoder` and `delivery` are the parts the options were turned into.
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
        block_timeout: float | None = None,
        shed_below: int | str | bool | None = False,
        shutdown_stall: float | None = None,
        shutdown_max: float | None = None,
        delivery_options: Mapping[str, Any] | None = None,
        failover: Sequence[AddressInput] = (),
        relp_window: int = 128,
        backoff_initial: float = 0.1,
        backoff_max: float = 30.0,
        error_interval: float = 30.0,
        level: int | str = logging.NOTSET,
    ) -> None:
        # logging.Handler.__init__ registers the handler for logging.shutdown(): only once every
        # option is known good, so a refused one never leaves a half-built handler there
        self.address = parse_address(address, socktype)
        queue_options = background_options(
            queue_size=queue_size,
            overflow=overflow,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
            block_timeout=block_timeout,
            shutdown_stall=shutdown_stall,
            shutdown_max=shutdown_max,
            delivery_options=delivery_options,
        )
        kind = delivery_kind(delivery, self.address, queue_options, shed_below)
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        self.timeout = float(timeout)
        self.error_interval = float(error_interval)
        self._next_report = 0.0
        self._stats = Stats()
        self.encoder = self._make_encoder(
            facility=Facility.coerce(facility),
            hostname=hostname,
            app_name=app_name,
            procid=procid,
            msgid=msgid,
            structured_data=coerce_sd(structured_data),
            sequence_id=bool(sequence_id),
            rfc=rfc,
            framing=framing,
            max_size=max_size,
            bom=coerce_bom(bom),
        )
        tls = TLSOptions(
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
        transport = build_transport(
            [self.address, *(parse_address(a, socktype) for a in failover)],
            timeout=self.timeout,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            relp_window=relp_window,
            tls=tls,
        )
        self.delivery: Delivery = make_delivery(
            kind, transport, self._stats, self._report, **queue_options
        )
        super().__init__(level)
        self._guard = _Guard()
        # the default formatter's text is the message itself: taken without it when it is used
        self._default_format = type(self).format is logging.Handler.format
        reset_after_fork(self)

    def _make_encoder(
        self,
        *,
        facility: Facility,
        hostname: str | None,
        app_name: str | None,
        procid: str | int | None,
        msgid: str | None,
        structured_data: tuple[SDElement, ...],
        sequence_id: bool,
        rfc: str | int | None,
        framing: str | bytes,
        max_size: SizeOption,
        bom: bool | str,
    ) -> RecordEncoder:
        """The encoder for the header options, with the defaults the transport implies."""
        rfc_name, omit_hostname = coerce_rfc(rfc, self.address)
        stream = self.address.is_stream and not SCHEMES[self.address.scheme].relp  # RELP frames
        if stream:
            frame(b"x", framing)  # refuse an unknown framing now, not on the log path
        return RecordEncoder(
            facility=facility,
            hostname=hostname if hostname is not None else socket.gethostname(),
            app_name=app_name if app_name is not None else program_name(),
            procid=None if procid is None else str(procid),
            msgid=msgid,
            structured_data=structured_data,
            sequence_id=sequence_id,
            rfc=rfc_name,
            omit_hostname=omit_hostname,
            max_size=coerce_max_size(max_size, rfc_name, self.address),
            bom=bom,
            framing=framing,
            stream=stream,
            stats=self._stats,
            report=self._report,
        )

    # -- settings (kept by the encoder; the header fields may be changed later) -------------------

    @property
    def facility(self) -> Facility:
        return self.encoder.facility

    @facility.setter
    def facility(self, value: int | str) -> None:
        self._change_header(facility=Facility.coerce(value))

    @property
    def hostname(self) -> str:
        return self.encoder.hostname

    @hostname.setter
    def hostname(self, value: str) -> None:
        self._change_header(hostname=str(value))

    @property
    def app_name(self) -> str:
        return self.encoder.app_name

    @app_name.setter
    def app_name(self, value: str) -> None:
        self._change_header(app_name=str(value))

    @property
    def procid(self) -> str:
        """PROCID: the configured value, else the current pid."""
        return self.encoder.procid

    @property
    def msgid(self) -> str | None:
        return self.encoder.msgid

    @msgid.setter
    def msgid(self, value: str | None) -> None:
        self._change_header(msgid=None if value is None else str(value))

    @property
    def structured_data(self) -> tuple[SDElement, ...]:
        return self.encoder.structured_data

    @structured_data.setter
    def structured_data(self, value: StructuredDataInput) -> None:
        self._change_header(structured_data=coerce_sd(value))

    def _change_header(self, **fields: Any) -> None:
        """Set header fields as the stdlib handler allows (`handler.facility = ...`): the
        encoder takes them, and its cached header is made again, under the handler's lock."""
        with self.lock or nullcontext():
            for name, value in fields.items():
                setattr(self.encoder, name, value)
            self.encoder.refresh()

    @property
    def sequence_id(self) -> bool:
        return self.encoder.sequence_id

    @property
    def rfc(self) -> str:
        """ "5424" or "3164"."""
        return self.encoder.rfc

    @property
    def omit_hostname(self) -> bool:
        return self.encoder.omit_hostname

    @property
    def framing(self) -> str | bytes:
        return self.encoder.framing

    @property
    def max_size(self) -> int | None:
        return self.encoder.max_size

    @property
    def bom(self) -> bool | str:
        return self.encoder.bom

    # -- public --------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: sent, dropped (+ dropped_<reason>), errors, reconnects, truncated,
        sd_dropped, and the text of the last error."""
        return self._stats.snapshot()

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit, without holding the handler lock across the network write.

        Delivery serialises writes with its own lock, whose waits are bounded.
        """
        if self.filters:
            verdict: object = self.filter(record)
            if not verdict:
                return False
            if isinstance(verdict, logging.LogRecord):
                record = verdict
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Format, frame and deliver one record. Never raises."""
        me = get_ident()
        guard = self._guard
        busy = guard.busy
        if me in busy:
            self._defer(guard, me, record)
            return
        busy.add(me)
        try:
            try:  # `_emit_one` written out: a call more costs the log call ~0.2 us
                data = self.encoder.encode(record, self.message_text(record))
            except Exception as exc:
                self._encode_failed(exc, record)
            else:
                self.delivery.deliver(data, record)
            if guard.pending:
                self._emit_deferred(guard, me)
        finally:
            busy.discard(me)

    def message_text(self, record: logging.LogRecord) -> str:
        """MSG: the formatter's output. Without a formatter (nor an overridden `format`) and
        without traceback or stack, that is the message itself, taken without the default
        formatter's work (`record.message` is set, as the formatter sets it)."""
        if (
            self.formatter is None
            and self._default_format
            and not (record.exc_info or record.exc_text or record.stack_info)
        ):
            text = record.message = record.getMessage()
            return text
        return self.format(record)

    def to_message(
        self, record: logging.LogRecord, text: str | None = None, *, sequence: int | None = None
    ) -> SyslogMessage:
        """The SyslogMessage for a record.

        `text` is the formatted MSG (else formatted here); `sequence` the `meta sequenceId`
        (else the next one, when the handler numbers its records).
        """
        if text is None:
            text = self.message_text(record)
        return self.encoder.to_message(record, text, sequence=sequence)

    def encode(self, record: logging.LogRecord) -> bytes:
        """The bytes that go on the wire for a record (framed on streams)."""
        return self.encoder.encode(record, self.message_text(record))

    def flush(self, timeout: float | None = None) -> None:
        """Wait (bounded) until handed-over records are written."""
        self.delivery.flush(self._bounded(timeout))

    def close(self, timeout: float | None = None) -> None:
        """Close the connection (TLS close_notify) within `timeout` seconds (bounded default)."""
        try:
            self.delivery.close(self._bounded(timeout))
        finally:
            super().close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address} ({logging.getLevelName(self.level)})>"

    # -- emit internals ------------------------------------------------------------------------

    def _emit_one(self, record: logging.LogRecord) -> None:
        try:
            data = self.encoder.encode(record, self.message_text(record))
        except Exception as exc:
            self._encode_failed(exc, record)
            return
        self.delivery.deliver(data, record)

    def _encode_failed(self, exc: Exception, record: logging.LogRecord) -> None:
        """A record that could not be formatted: dropped, counted, reported."""
        self._stats.drop("format")
        self._stats.error(exc)
        self._report(exc, record)

    def _defer(self, guard: _Guard, me: int, record: logging.LogRecord) -> None:
        """A record logged from inside our own send path: emit it after the outer one."""
        pending = guard.pending.setdefault(me, [])
        if len(pending) < REENTRANT_MAX:
            pending.append(record)
        else:
            self._stats.drop("reentrant")

    def _emit_deferred(self, guard: _Guard, me: int) -> None:
        """Emit what was logged re-entrantly, at most REENTRANT_MAX records (no endless chain)."""
        pending = guard.pending.get(me)
        if pending is None:
            return  # another thread's
        for _ in range(REENTRANT_MAX):
            if not pending:
                break
            self._emit_one(pending.pop(0))
        if pending:
            self._stats.drop("reentrant", len(pending))
        del guard.pending[me]

    def _report(self, exc: BaseException, record: logging.LogRecord | None) -> None:
        """At most once per `error_interval` seconds: one line for a failure of the network
        (a `TransportError`: a collector refusing or unreachable), `handleError` for the rest
        (bugs: a record that cannot be formatted, a transport that raised something else)."""
        if isinstance(exc, DeliveryNotice):  # lost records: one line, rate limited by delivery
            exc.show()
            return
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + self.error_interval
        if isinstance(exc, TransportError):  # the network failed, not our code: one line
            interval = f"{self.error_interval:g}"
            DeliveryNotice(
                f"syslogkit: {exc} (in stats; told again at most every {interval} s)"
            ).show()
            return
        if record is None:
            record = logging.LogRecord("syslogkit", logging.ERROR, "", 0, str(exc), None, None)
        try:
            raise exc
        except BaseException:
            self.handleError(record)

    # -- lifecycle -----------------------------------------------------------------------------

    def _bounded(self, timeout: float | None) -> float | None:
        # None: the delivery's own bounded default (background: wait while it progresses)
        return None if timeout is None else max(0.0, timeout)

    def after_fork_in_child(self) -> None:
        """In a forked child: own socket, own locks, the child's pid in PROCID."""
        self._guard = _Guard()
        self._next_report = 0.0
        self.delivery.after_fork_in_child()
        self.encoder.refresh()
