"""Received bytes -> `Record`: the one place a stream frame, a datagram or a RELP message becomes
a record, and where its counts are kept.

Decided here, once, for every transport:

- One trailing LF ends a message and is not part of it (rsyslog's templates end in LF; so do
  many devices' datagrams). Stream frames come out of the codec's `FrameDecoder` without it.
- A message longer than `max_frame` octets is cut there, stored, and noted
  (`framing: message of N octets truncated to M`, counted as `framing["truncated"]`).
- Strict parse first; on a fault the lenient parse is stored with the strict error as its note.
  The listener counts each record once: `parsed` (clean), `noted` (parsed, with a note: lenient
  or assumed fields, a framing note) or `unparsed` (not even a PRI could be read: stored raw).
- A timestamp without a UTC offset (and a BSD one) is read in the listener's zone
  (`reference`): the collector's local zone unless one is configured.
- A record relayed by another collector (a JetStream edge, `relayed`) is parsed again here
  and counted the same way; its note is the edge's, kept as it came. Bytes that are not a
  record at all (a JetStream message that is not a batch, `unparsed`) are stored raw with a
  note and counted `unparsed`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone, tzinfo
from typing import Any

from syslogkit.codec.detect import is_rfc5424, parse
from syslogkit.codec.framing import FramingError
from syslogkit.codec.message import ParseError, SyslogMessage
from syslogkit.codec.rfc3164 import default_reference, parse_3164
from syslogkit.codec.rfc5424 import parse_5424

from .config import reference_in
from .fastpath import fast_row
from .record import FROM_ROW, NOTED, NULL, Record
from .stats import ListenerStats

__all__ = ["Decoder", "parse_frame"]

_REPLACEMENT = "\ufffd"
_LF = 10


def _describe(exc: Exception) -> str:
    if isinstance(exc, ParseError):
        return f"{exc.reason} (column {exc.column})"
    return f"{type(exc).__name__}: {exc}"


def _msg_bytes(raw: bytes, msg: str) -> bytes | None:
    """The octets of a MSG that is not valid UTF-8: the suffix of `raw` that decodes to `msg`.

    The parsers decode MSG with replacement characters; the header before it is ASCII in every
    format, so its length in octets is its length in characters. None when that does not hold.
    """
    text = raw.decode("utf-8", "replace")
    if not text.endswith(msg):
        return None
    prefix = text[: len(text) - len(msg)]
    if _REPLACEMENT in prefix:
        return None
    candidate = raw[len(prefix.encode("utf-8")) :]
    if candidate.decode("utf-8", "replace") != msg:
        return None
    return candidate


def parse_frame(
    raw: bytes, *notes: str | None, reference: datetime | None = None
) -> tuple[SyslogMessage | None, str | None, bytes | None]:
    """Parse one frame: (message, error, msg_bytes).

    Strict first (one parse for a clean message); on a fault the strict error is kept and the
    lenient parse is stored. A MSG that is not valid UTF-8 comes back as bytes. `notes` (what
    the transport found wrong with the frame: truncated, cut off, ...) come first in `error`.
    `reference` gives timestamps without a zone (or a year) theirs; None: now, local zone.

    The strict parse is `parse(raw, mode="strict")` without its argument checks: the format is
    told apart here (`is_rfc5424`) and the parser called directly.
    """
    if any(notes):
        parsed, fault, octets = parse_frame(raw, reference=reference)
        return parsed, "; ".join(note for note in (*notes, fault) if note), octets
    error: str | None = None
    message: SyslogMessage | None
    try:
        if is_rfc5424(raw):
            message = parse_5424(raw, "strict")
        else:
            message = parse_3164(raw, "strict", reference=reference)
    except Exception as exc:  # ParseError, or anything a parser bug raises: never lose the frame
        error = _describe(exc)
        try:
            if reference is None:
                message = parse(raw, mode="lenient")
            else:
                message = parse(raw, mode="lenient", reference=reference)
        except Exception as exc2:
            return None, f"{error}; lenient: {_describe(exc2)}", None
    text = message.msg
    if text is not None and _REPLACEMENT in text:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return message, error, _msg_bytes(raw, text)
    return message, error, None


class Decoder:
    """One listener's way from received bytes to records (see the module docstring).

    Called from the thread that serves the listener; `received_at` and `reference` are taken
    once per received chunk by the caller (`batch()`), not per record.
    """

    __slots__ = ("_local", "listener", "max_frame", "stats", "transport", "zone")

    def __init__(
        self,
        stats: ListenerStats,
        *,
        transport: str,
        listener: str,
        max_frame: int,
        zone: tzinfo | None = None,
    ) -> None:
        self.stats = stats
        self.transport = transport
        self.listener = listener
        self.max_frame = max_frame
        self.zone = zone
        self._local: tuple[float, tzinfo] = (0.0, timezone.utc)

    def _local_zone(self) -> tzinfo:
        """The collector's local zone (`default_reference`'s), looked up once a second."""
        now = time.monotonic()
        if now - self._local[0] >= 1.0:
            zone = default_reference().tzinfo
            assert zone is not None
            self._local = (now, zone)
        return self._local[1]

    def reference(self) -> datetime | None:
        """Now, in this listener's zone (None: the codec's default, the local zone)."""
        return reference_in(self.zone)

    def message(self, data: bytes) -> tuple[bytes, str | None]:
        """A datagram or RELP message as stored: one trailing LF dropped, cut to `max_frame`
        (with the note that says so)."""
        if data and data[-1] == _LF:
            data = data[:-1]
        if len(data) <= self.max_frame:
            return data, None
        self.stats.framing["truncated"] += 1
        note = f"framing: message of {len(data)} octets truncated to {self.max_frame}"
        return data[: self.max_frame], note

    def frame(
        self, item: bytes | FramingError, *, at_eof: bool = False
    ) -> tuple[bytes, str | None]:
        """A stream frame from `FrameDecoder` as stored (empty: nothing to store), with the
        framing note. A delimited last frame without its LF at the end of the stream is
        complete, as rsyslog takes it."""
        if not isinstance(item, FramingError):
            return item, None
        raw = item.frame or b""
        note: str | None = None
        if not (at_eof and item.kind == FramingError.INCOMPLETE and "trailer" in item.reason):
            note = f"framing: {item.reason}"
            self.stats.framing[item.kind] += 1
        if not raw:
            self.stats.dropped[f"framing:{item.kind}"] += 1
        return raw, note

    def records(
        self,
        raws: Sequence[bytes],
        received_at: float,
        peers: Sequence[str],
        *,
        reference: datetime | None = None,
        tls_subject: str | None = None,
        tls_fingerprint: str | None = None,
    ) -> list[Record]:
        """`record()` for a batch of frames without a transport note, one peer each (empty
        frames skipped): the fast path with everything per batch taken out of the loop."""
        zone: Any = self._local_zone() if reference is None else reference.tzinfo
        transport = self.transport
        listener = self.listener
        subject = NULL if tls_subject is None else tls_subject
        fpr = NULL if tls_fingerprint is None else tls_fingerprint
        tails: dict[str, tuple[Any, ...]] = {}
        fast = fast_row
        out: list[Record] = []
        append = out.append
        parsed = noted = 0
        for raw, peer in zip(raws, peers, strict=True):
            if not raw:  # nothing left once the one trailing LF went: counted, never silent
                self.stats.dropped["empty"] += 1
                continue
            tail = tails.get(peer)
            if tail is None:
                tail = tails[peer] = (transport, peer, listener, subject, fpr, NULL)
            row = fast(raw, zone, received_at, tail)
            if row is None:
                append(
                    self.record(
                        raw,
                        received_at,
                        peer,
                        reference=reference,
                        tls_subject=tls_subject,
                        tls_fingerprint=tls_fingerprint,
                    )
                )
                continue
            error = row[15]
            if error is NULL:
                error = None
                parsed += 1
            else:
                noted += 1
            append(Record(raw, received_at, transport, peer, listener, FROM_ROW, error, None,
                          tls_subject, tls_fingerprint, None, row))  # fmt: skip
        stats = self.stats
        stats.received += parsed + noted
        stats.parsed += parsed
        stats.noted += noted
        return out

    def record(
        self,
        raw: bytes,
        received_at: float,
        peer: str,
        *notes: str | None,
        reference: datetime | None = None,
        tls_subject: str | None = None,
        tls_fingerprint: str | None = None,
    ) -> Record:
        """Parse one message and count it (`Record` is built here, and only here).

        The fast path (`fastpath.fast_row`) reads the common shapes straight into the store's
        row; everything else, and any frame with a transport note, goes through `parse_frame`.
        """
        if not notes or not any(notes):
            zone = self._local_zone() if reference is None else reference.tzinfo
            row = fast_row(
                raw,
                zone,  # type: ignore[arg-type]
                received_at,
                (
                    self.transport,
                    peer,
                    self.listener,
                    NULL if tls_subject is None else tls_subject,
                    NULL if tls_fingerprint is None else tls_fingerprint,
                    NULL,
                ),
            )
            if row is not None:
                error = row[15]
                stats = self.stats
                stats.received += 1
                if error is NULL:
                    error = None
                    stats.parsed += 1
                else:
                    stats.noted += 1
                return Record(
                    raw,
                    received_at,
                    self.transport,
                    peer,
                    self.listener,
                    error=error,
                    tls_subject=tls_subject,
                    tls_fingerprint=tls_fingerprint,
                    row=row,
                )
        message, error, msg_bytes = parse_frame(raw, *notes, reference=reference)
        return self._built(
            raw, received_at, peer, (message, error, msg_bytes), tls_subject, tls_fingerprint
        )

    def relayed(
        self,
        raw: bytes,
        received_at: float,
        peer: str,
        error: str | None,
        *,
        reference: datetime | None = None,
        tls_subject: str | None = None,
        tls_fingerprint: str | None = None,
    ) -> Record:
        """A record another collector received and relayed with its note (`error`, a JetStream
        edge's): parsed again here and counted; the note is kept as it came (it holds this
        parse's fault already, and framing notes that `raw` cannot show)."""
        if error is None:
            return self.record(
                raw,
                received_at,
                peer,
                reference=reference,
                tls_subject=tls_subject,
                tls_fingerprint=tls_fingerprint,
            )
        message, _, msg_bytes = parse_frame(raw, reference=reference)
        return self._built(
            raw, received_at, peer, (message, error, msg_bytes), tls_subject, tls_fingerprint
        )

    def unparsed(self, raw: bytes, received_at: float, peer: str, note: str) -> Record:
        """Bytes kept raw, not parsed (they are not a frame: a JetStream message that is not a
        batch), with the note that says why; counted `unparsed`."""
        return self._built(raw, received_at, peer, (None, note, None), None, None)

    def _built(
        self,
        raw: bytes,
        received_at: float,
        peer: str,
        parsed: tuple[SyslogMessage | None, str | None, bytes | None],
        tls_subject: str | None,
        tls_fingerprint: str | None,
    ) -> Record:
        """The record of a frame not taken by the fast path (`parse_frame`'s message, error and
        msg_bytes, or no message and a note), counted."""
        message, error, msg_bytes = parsed
        return self._counted(
            Record(
                raw=raw,
                received_at=received_at,
                transport=self.transport,
                peer=peer,
                listener=self.listener,
                message=message,
                error=error,
                msg_bytes=msg_bytes,
                tls_subject=tls_subject,
                tls_fingerprint=tls_fingerprint,
            )
        )

    def _counted(self, record: Record) -> Record:
        stats = self.stats
        stats.received += 1
        if record.error is None:
            stats.parsed += 1
        elif record.status == NOTED:
            stats.noted += 1
        else:
            stats.unparsed += 1
        return record
