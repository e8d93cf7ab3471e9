"""What the collector keeps for every frame it receives: the raw bytes, the parse, the peer.

A `Record` is built once, in the thread that received the frame, and handed to every sink. The
JSON form (`record_to_dict`) is shared by the JSON-lines sink and `syslogkit query --json`, so a
file written by the collector and a query of its store read the same.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Final

from syslogkit.codec.message import Facility, SDElement, Severity, SyslogMessage
from syslogkit.codec.rfc5424.grammar import NAME_RE, VALUE_RE, unescape

__all__ = [
    "NOTED",
    "NULL",
    "PARSED",
    "UNPARSED",
    "Record",
    "message_from_row",
    "message_from_values",
    "message_time",
    "record_to_dict",
    "record_to_json",
    "sd_from_column",
    "sd_from_json",
    "sd_to_json",
]

#: `Record.status`: parsed cleanly; parsed with a note (lenient or assumed fields, a framing
#: note); not parsed at all (not even a PRI could be read: stored raw)
PARSED: Final = "parsed"
NOTED: Final = "noted"
UNPARSED: Final = "unparsed"
_escape: Callable[[str], str] = json.encoder.encode_basestring

#: NULL in a row built for the store (`store.schema.make_row`, `fastpath.fast_row`): the
#: sqlite3 module binds None through its adapter lookup (about 0.4 us a column), an int
#: directly; the store's INSERT turns it back into NULL with NULLIF. No nullable column holds
#: -1 otherwise (the text columns hold text, the numbers are >= 0). The one definition.
NULL: Final = -1


_UNSET: Any = object()
#: `Record(..., message=FROM_ROW, row=row)`: the message is built from the row when asked for
FROM_ROW: Any = _UNSET


class Record:
    """One received frame (built by keyword, in `collector.decode` only, and by the store).

    `message` is the lenient parse (None only when even that failed); `error` is the strict parse
    error or the framing error, None when the frame is a clean message. `msg_bytes` holds MSG when
    it is not valid UTF-8 (then `message.msg` is its decoding with replacement characters).

    `row`: the store's row of this record when the decoder's fast path made it
    (`collector.fastpath`); then `message` is built from it only when a sink asks for it, the
    way the store builds it when the record is read back (`message_from_values`).

    `origin`: set on the last record of a JetStream message only (`nats.source`): the message's
    identity and how many records it carried, `(Nats-Msg-Id, count)`; the store writes it in
    the transaction of the rows (`Store.insert_rows(origins=...)`). None everywhere else.
    """

    __slots__ = (
        "_message",
        "error",
        "id",
        "listener",
        "msg_bytes",
        "origin",
        "peer",
        "raw",
        "received_at",
        "row",
        "tls_fingerprint",
        "tls_subject",
        "transport",
    )

    def __init__(
        self,
        raw: bytes,
        received_at: float,
        transport: str,
        peer: str,
        listener: str,
        message: SyslogMessage | None = _UNSET,
        error: str | None = None,
        msg_bytes: bytes | None = None,
        tls_subject: str | None = None,
        tls_fingerprint: str | None = None,
        id: int | None = None,
        row: tuple[Any, ...] | None = None,
    ) -> None:
        if message is _UNSET and row is None:
            raise TypeError("Record needs a message (None: not parsed) or a row")
        self.raw = raw
        self.received_at = received_at
        self.transport = transport
        self.peer = peer
        self.listener = listener
        self._message = message
        self.error = error
        self.msg_bytes = msg_bytes
        self.tls_subject = tls_subject
        self.tls_fingerprint = tls_fingerprint
        self.id = id
        self.row = row
        self.origin: tuple[str, int] | None = None

    @property
    def message(self) -> SyslogMessage | None:
        message = self._message
        if message is _UNSET:
            message = self._message = message_from_row(self.row)
        return message

    @message.setter
    def message(self, value: SyslogMessage | None) -> None:
        self._message = value

    @property
    def status(self) -> str:
        """`PARSED` (no note), `NOTED` (a note, and the lenient parse read at least the PRI)
        or `UNPARSED` (stored raw). The store's `Filters.status` selects the same split."""
        if self.error is None:
            return PARSED
        if self._message is _UNSET:
            return NOTED if self.row is not None and self.row[3] != NULL else UNPARSED
        message = self.message
        if message is None or message.facility is None:
            return UNPARSED
        return NOTED

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.raw,
            self.received_at,
            self.transport,
            self.peer,
            self.listener,
            self.message,
            self.error,
            self.msg_bytes,
            self.tls_subject,
            self.tls_fingerprint,
            self.id,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        names = ("raw", "received_at", "transport", "peer", "listener", "message", "error",
                 "msg_bytes", "tls_subject", "tls_fingerprint", "id")  # fmt: skip
        body = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._fields(), strict=True))
        return f"Record({body})"


# -- a row's values -> the message ---------------------------------------------------------------


def message_from_row(row: tuple[Any, ...] | None) -> SyslogMessage | None:
    """The message of a row built for the store (`store.schema.make_row`'s layout)."""
    if row is None:
        return None
    values = [None if type(v) is int and v == NULL else v for v in row]
    return message_from_values(
        values[2], values[3], values[4], values[5], values[6], values[7], values[8],
        values[9], values[10], values[11], values[13], row[14], values[15], values[21],
    )  # fmt: skip


def message_from_values(
    timestamp: str | None,
    facility: int | None,
    severity: int | None,
    version: int | None,
    hostname: str | None,
    app_name: str | None,
    procid: str | None,
    msgid: str | None,
    sd: str | None,
    msg: str | None,
    bom: int | None,
    raw: bytes,
    error: str | None,
    extra: str | None,
) -> SyslogMessage | None:
    """The message of a stored record's columns (None: the record was not parsed at all)."""
    if (
        timestamp is None
        and facility is None
        and severity is None
        and version is None
        and hostname is None
        and app_name is None
        and msg is None
        and error is not None
    ):
        return None
    return SyslogMessage(
        facility=None if facility is None else Facility(facility),
        severity=None if severity is None else Severity(severity),
        version=version,
        timestamp=None if timestamp is None else datetime.fromisoformat(timestamp),
        hostname=hostname,
        app_name=app_name,
        procid=procid,
        msgid=msgid,
        structured_data=sd_from_column(sd),
        msg=msg,
        bom=bool(bom),
        raw=bytes(raw),
        extra=json.loads(extra) if extra else None,
    )


_SD_TOKEN: Final = re.compile(
    r"\[(" + NAME_RE + ")| (" + NAME_RE + ')="(' + VALUE_RE + ')"', re.S | re.A
)


def sd_from_column(text: str | None) -> tuple[SDElement, ...]:
    """Structured data as stored: its RFC 5424 text (written by the fast path, which validated
    it) or the JSON of `sd_to_json` (the general path, and every store of 0.1); a JSON text
    starts with `[["`, which no SD text can (an SD-ID holds no `"`)."""
    if not text:
        return ()
    if text.startswith('[["'):
        return sd_from_json(text)
    elements: list[SDElement] = []
    sd_id: str | None = None
    params: list[tuple[str, str]] = []
    for found_id, name, value in _SD_TOKEN.findall(text):
        if found_id:
            if sd_id is not None:
                elements.append(SDElement(sd_id, tuple(params)))
                params = []
            sd_id = found_id
        else:
            params.append((name, unescape(value)))
    if sd_id is not None:
        elements.append(SDElement(sd_id, tuple(params)))
    return tuple(elements)


# -- JSON form ----------------------------------------------------------------------------------


def sd_to_json(sd: tuple[SDElement, ...]) -> str | None:
    """Structured data as compact JSON, order and duplicates kept: [[id, [[k, v], ...]], ...].

    Built by hand around the C string escaper (list comprehensions, no generators): several
    times faster than `json.dumps` here.
    """
    if not sd:
        return None
    esc = _escape
    if len(sd) == 1:
        el = sd[0]
        return (
            "[["
            + esc(el.id)
            + ",["
            + ",".join(["[" + esc(k) + "," + esc(v) + "]" for k, v in el.params])
            + "]]]"
        )
    return (
        "["
        + ",".join(
            [
                "["
                + esc(el.id)
                + ",["
                + ",".join(["[" + esc(k) + "," + esc(v) + "]" for k, v in el.params])
                + "]]"
                for el in sd
            ]
        )
        + "]"
    )


def sd_from_json(text: str | None) -> tuple[SDElement, ...]:
    """The inverse of `sd_to_json`."""
    if not text:
        return ()
    return tuple(
        SDElement(str(sd_id), tuple((str(k), str(v)) for k, v in params))
        for sd_id, params in json.loads(text)
    )


def message_time(message: SyslogMessage | None, received_at: float) -> float:
    """A message's time, the store's `time` column (what `--since`/`--until` and the web's
    ranges select): its timestamp in epoch seconds, else (no timestamp, or one the platform
    cannot convert) when it was received. The one definition (`fastpath` computes the same
    for the rows it builds: tests/collector/test_collector_fastpath.py holds them equal)."""
    ts = None if message is None else message.timestamp
    if ts is not None:
        try:
            return ts.timestamp()
        except (OverflowError, OSError, ValueError):
            pass
    return received_at


_last_iso: tuple[float, str] = (-1.0, "")


def iso_utc(epoch: float) -> str:
    """An epoch time as RFC 3339 UTC with microseconds.

    The last answer is remembered: every record of a received chunk has the same time.
    """
    global _last_iso
    last = _last_iso  # one tuple, replaced whole: safe to share between threads
    if last[0] == epoch:
        return last[1]
    text = datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="microseconds")
    _last_iso = (epoch, text)
    return text


def _bytes_field(out: dict[str, Any], name: str, value: bytes) -> None:
    try:
        out[name] = value.decode("utf-8")
    except UnicodeDecodeError:
        out[name + "_b64"] = base64.b64encode(value).decode("ascii")


def record_to_dict(record: Record) -> dict[str, Any]:
    """The JSON object of a record: message fields plus received_at, peer, transport.

    Bytes are lossless: `raw` is text when the frame is valid UTF-8, else `raw_b64` holds it in
    base64; a MSG that is not valid UTF-8 has `msg` (decoded with replacement) and `msg_b64`.
    """
    m = record.message
    out: dict[str, Any] = {}
    if record.id is not None:
        out["id"] = record.id
    out["received_at"] = iso_utc(record.received_at)
    out["transport"] = record.transport
    out["peer"] = record.peer
    out["listener"] = record.listener
    if record.tls_subject is not None or record.tls_fingerprint is not None:
        out["tls_subject"] = record.tls_subject
        out["tls_fingerprint"] = record.tls_fingerprint
    if m is None:
        out.update(
            facility=None,
            severity=None,
            version=None,
            timestamp=None,
            hostname=None,
            app_name=None,
            procid=None,
            msgid=None,
            structured_data=[],
            msg=None,
            bom=False,
        )
    else:
        out["facility"] = None if m.facility is None else int(m.facility)
        out["severity"] = None if m.severity is None else int(m.severity)
        out["version"] = m.version
        out["timestamp"] = None if m.timestamp is None else m.timestamp.isoformat()
        out["hostname"] = m.hostname
        out["app_name"] = m.app_name
        out["procid"] = m.procid
        out["msgid"] = m.msgid
        out["structured_data"] = [
            {"id": el.id, "params": [list(p) for p in el.params]} for el in m.structured_data
        ]
        out["msg"] = m.msg
        out["bom"] = m.bom
        if m.extra:
            out["extra"] = m.extra
    if record.msg_bytes is not None:
        out["msg_b64"] = base64.b64encode(record.msg_bytes).decode("ascii")
    _bytes_field(out, "raw", record.raw)
    out["error"] = record.error
    return out


def _json_str(value: str | None) -> str:
    return "null" if value is None else _escape(value)


def _json_bytes(name: str, value: bytes) -> str:
    try:
        return '"' + name + '":' + _escape(value.decode("utf-8"))
    except UnicodeDecodeError:
        return '"' + name + '_b64":"' + base64.b64encode(value).decode("ascii") + '"'


def record_to_json(record: Record) -> str:
    """`record_to_dict(record)` as compact JSON text, built without the dict.

    The same keys in the same order and the same text as `json.dumps(record_to_dict(record),
    ensure_ascii=False, separators=(",", ":"), default=str)`, about five times faster: the
    JSON-lines sink writes one per record.
    """
    esc = _escape
    m = record.message
    parts = []
    if record.id is not None:
        parts.append('"id":' + str(int(record.id)))
    parts.append(
        '"received_at":"'
        + iso_utc(record.received_at)
        + '","transport":'
        + esc(record.transport)
        + ',"peer":'
        + esc(record.peer)
        + ',"listener":'
        + esc(record.listener)
    )
    if record.tls_subject is not None or record.tls_fingerprint is not None:
        parts.append(
            '"tls_subject":'
            + _json_str(record.tls_subject)
            + ',"tls_fingerprint":'
            + _json_str(record.tls_fingerprint)
        )
    if m is None:
        parts.append(
            '"facility":null,"severity":null,"version":null,"timestamp":null,"hostname":null,'
            '"app_name":null,"procid":null,"msgid":null,"structured_data":[],"msg":null,'
            '"bom":false'
        )
    else:
        ts = m.timestamp
        sd = m.structured_data
        parts.append(
            '"facility":'
            + ("null" if m.facility is None else str(int(m.facility)))
            + ',"severity":'
            + ("null" if m.severity is None else str(int(m.severity)))
            + ',"version":'
            + ("null" if m.version is None else str(int(m.version)))
            + ',"timestamp":'
            + ("null" if ts is None else esc(ts.isoformat()))
            + ',"hostname":'
            + _json_str(m.hostname)
            + ',"app_name":'
            + _json_str(m.app_name)
            + ',"procid":'
            + _json_str(m.procid)
            + ',"msgid":'
            + _json_str(m.msgid)
            + ',"structured_data":['
            + ",".join(
                [
                    '{"id":'
                    + esc(el.id)
                    + ',"params":['
                    + ",".join(["[" + esc(k) + "," + esc(v) + "]" for k, v in el.params])
                    + "]}"
                    for el in sd
                ]
            )
            + '],"msg":'
            + _json_str(m.msg)
            + ',"bom":'
            + ("true" if m.bom else "false")
        )
        if m.extra:
            parts.append(
                '"extra":'
                + json.dumps(m.extra, ensure_ascii=False, separators=(",", ":"), default=str)
            )
    if record.msg_bytes is not None:
        parts.append('"msg_b64":"' + base64.b64encode(record.msg_bytes).decode("ascii") + '"')
    parts.append(_json_bytes("raw", record.raw))
    parts.append('"error":' + _json_str(record.error))
    return "{" + ",".join(parts) + "}"
