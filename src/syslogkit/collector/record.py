"""What the collector keeps for every frame it receives: the raw bytes, the parse, the peer.

A `Record` is built once, in the thread that received the frame, and handed to every sink. The
JSON form (`record_to_dict`) is shared by the JSON-lines sink and `syslogkit query --json`, so a
file written by the collector and a query of its store read the same.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from syslogkit.codec.message import SDElement, SyslogMessage

__all__ = [
    "NOTED",
    "PARSED",
    "UNPARSED",
    "Record",
    "record_to_dict",
    "record_to_json",
    "sd_from_json",
    "sd_to_json",
]

#: `Record.status`: parsed cleanly; parsed with a note (lenient or assumed fields, a framing
#: note); not parsed at all (not even a PRI could be read: stored raw)
PARSED: Final = "parsed"
NOTED: Final = "noted"
UNPARSED: Final = "unparsed"
_escape: Callable[[str], str] = json.encoder.encode_basestring


@dataclass(slots=True)
class Record:
    """One received frame (built by keyword, in `collector.decode` only, and by the store).

    `message` is the lenient parse (None only when even that failed); `error` is the strict parse
    error or the framing error, None when the frame is a clean message. `msg_bytes` holds MSG when
    it is not valid UTF-8 (then `message.msg` is its decoding with replacement characters).
    """

    raw: bytes
    received_at: float
    transport: str
    peer: str
    listener: str
    message: SyslogMessage | None
    error: str | None = None
    msg_bytes: bytes | None = None
    tls_subject: str | None = None
    tls_fingerprint: str | None = None
    id: int | None = None

    @property
    def status(self) -> str:
        """`PARSED` (no note), `NOTED` (a note, and the lenient parse read at least the PRI)
        or `UNPARSED` (stored raw). The store's `Filters.status` selects the same split."""
        if self.error is None:
            return PARSED
        message = self.message
        if message is None or message.facility is None:
            return UNPARSED
        return NOTED


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
