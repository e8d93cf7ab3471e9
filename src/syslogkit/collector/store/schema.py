"""The store's schema, and a record as a row and back (`make_row`, `record_from_row`).

Every record is kept with its raw bytes and its parse error; a MSG that is not valid UTF-8 is
kept as bytes in `msg_bytes` (SQLite text cannot hold it) next to its decoding with replacement
characters in `msg`, which the full-text index covers.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone, tzinfo
from typing import Any

from ..record import NULL, Record, message_from_values, message_time, sd_to_json
from .rollup import ROLLUP_SCHEMA

__all__ = [
    "COLUMNS",
    "INSERT",
    "INSERT_FTS",
    "INSERT_ORIGIN",
    "INSERT_WITH_ID",
    "RAW",
    "ROLLUP_VERSIONS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SELECT",
    "make_row",
    "record_from_row",
    "statements",
]

#: 2: structured data as its RFC 5424 text (rows of the decoder's fast path) or JSON (others,
#: and every row of a version-1 store: both read back alike); only the time index (the indexes
#: on host, app and severity cost a third of an insert and no query of `query`/`tail` needed
#: them: bench/query.py); a new store's full-text index keeps no column sizes (`columnsize=0`:
#: only ranking reads them, none is used; a tenth of an insert). A version-1 store opened for
#: writing becomes version 2 (its full-text index stays as it was).
#: 3: per-minute counts by severity, host and app (`rollup`), kept by the writer in the insert's
#: transaction; a store of another version opened for writing gets them built once.
#: 4: `origins`, the JetStream messages whose records the store holds (`Store.has_origin`),
#: one row per message written in the transaction of its rows; a store of another version
#: opened for writing gets the table, empty (its rows came from no message it can name).
#: Every version: the full-text delete trigger skips the rows `INSERT_FTS` skipped (no MSG:
#: an unparsed row); deleting those from the index made retention fail ("database disk
#: image is malformed"), so it is created again whenever a store is opened for writing.
#: 5: no second copy of the message: when the raw frame ends with MSG's bytes (valid UTF-8, in
#: `msg`), `raw` keeps only what comes before them and `msg_bytes` holds an empty blob to say
#: so (it is NULL or the undecodable MSG otherwise, never empty); `SELECT` and `RAW` put the
#: frame back together, byte for byte. Rows of versions 3 and 4 read as they are.
SCHEMA_VERSION = "5"
#: the versions whose rollups are kept as this one keeps them (4 added `origins`, 5 the
#: shorter frame): not rebuilt when such a file is opened for writing
ROLLUP_VERSIONS = frozenset({"3", "4", "5"})

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    time REAL NOT NULL,
    timestamp TEXT,
    facility INTEGER,
    severity INTEGER,
    version INTEGER,
    hostname TEXT,
    app_name TEXT,
    procid TEXT,
    msgid TEXT,
    sd TEXT,
    msg TEXT,
    msg_bytes BLOB,
    bom INTEGER NOT NULL DEFAULT 0,
    raw BLOB NOT NULL,
    error TEXT,
    transport TEXT,
    peer TEXT,
    listener TEXT,
    tls_subject TEXT,
    tls_fingerprint TEXT,
    extra TEXT
);
CREATE INDEX IF NOT EXISTS messages_time ON messages(time);
DROP INDEX IF EXISTS messages_host;
DROP INDEX IF EXISTS messages_app;
DROP INDEX IF EXISTS messages_severity;
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts
    USING fts5(msg, content='messages', content_rowid='id', columnsize=0);
DROP TRIGGER IF EXISTS messages_ai;
CREATE TABLE IF NOT EXISTS origins (
    msg_id TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS origins_last ON origins(last_id);
DROP TRIGGER IF EXISTS messages_ad;
CREATE TRIGGER messages_ad AFTER DELETE ON messages WHEN old.msg <> '' BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, msg) VALUES ('delete', old.id, old.msg);
END;
"""
    + ROLLUP_SCHEMA
)

COLUMNS = (
    "received_at, time, timestamp, facility, severity, version, hostname, app_name, procid,"
    " msgid, sd, msg, msg_bytes, bom, raw, error, transport, peer, listener, tls_subject,"
    " tls_fingerprint, extra"
)
#: stands for NULL in a row made by `make_row` (`record.NULL`, where it is decided: an int
#: binds faster than None); the INSERT turns it back into NULL with NULLIF
_NULL = NULL
_NOT_NULL = frozenset({"received_at", "time", "bom", "raw"})
_NAMES = COLUMNS.split(", ")


def _values(first: int) -> list[str]:
    """The VALUES of a row's columns, its parameters numbered from `first`: NULL back from
    `_NULL`, and the frame without the message's bytes when it ends with them (version 4)."""
    param = {name: f"?{first + i}" for i, name in enumerate(_NAMES)}
    msg, raw, msg_bytes = param["msg"], param["raw"], param["msg_bytes"]
    text = f"CAST(NULLIF({msg}, {_NULL}) AS BLOB)"
    cut = (
        f"NULLIF({msg_bytes}, {_NULL}) IS NULL AND length({text}) > 0"
        f" AND substr({raw}, length({raw}) - length({text}) + 1) = {text}"
    )
    out = []
    for name in _NAMES:
        if name == "raw":
            out.append(
                f"CASE WHEN {cut} THEN substr({raw}, 1, length({raw}) - length({text}))"
                f" ELSE {raw} END"
            )
        elif name == "msg_bytes":
            out.append(f"CASE WHEN {cut} THEN X'' ELSE NULLIF({msg_bytes}, {_NULL}) END")
        elif name in _NOT_NULL:
            out.append(param[name])
        else:
            out.append(f"NULLIF({param[name]}, {_NULL})")
    return out


INSERT = "INSERT INTO messages ({}) VALUES ({})".format(COLUMNS, ", ".join(_values(1)))
#: the first row of a new partition: its id continues the ids of the partition before it
INSERT_WITH_ID = "INSERT INTO messages (id, {}) VALUES (?1, {})".format(
    COLUMNS, ", ".join(_values(2))
)
#: (msg_id, count, last_id): `last_id` is the last row id of the insert that wrote it, so that
#: retention forgets an origin once every row of that insert is deleted
INSERT_ORIGIN = "INSERT OR IGNORE INTO origins(msg_id, count, last_id) VALUES (?, ?, ?)"
INSERT_FTS = (
    "INSERT INTO messages_fts(rowid, msg) SELECT id, msg FROM messages WHERE id >= ? AND msg <> ''"
)
#: the frame as received, put back together (see version 4)
RAW = "CASE WHEN msg_bytes = X'' THEN CAST(raw || msg AS BLOB) ELSE raw END"
SELECT = "SELECT id, {} FROM messages".format(
    ", ".join(
        RAW
        if name == "raw"
        else "CASE WHEN msg_bytes = X'' THEN NULL ELSE msg_bytes END"
        if name == "msg_bytes"
        else name
        for name in _NAMES
    )
)


_iso_seconds: dict[tuple[int, tzinfo], tuple[str, str]] = {}


def _isoformat(ts: datetime, when: float) -> str:
    """`ts.isoformat()`, with the text up to the second remembered per second and offset: the
    messages of a batch mostly share both, and `isoformat` costs several times more."""
    tz = ts.tzinfo
    if type(tz) is not timezone:  # a zone with DST: the same instant may read two ways, and
        return ts.isoformat()  # a naive time may not convert (then `when` is not its epoch)
    us = ts.microsecond
    key = (round(when - us / 1e6), tz)  # whole seconds: exact, whatever the float's precision
    parts = _iso_seconds.get(key)
    if parts is None:
        text = ts.replace(microsecond=0).isoformat()
        parts = (text[:19], text[19:])  # YYYY-MM-DDTHH:MM:SS, then the offset
        if len(_iso_seconds) >= 4096:
            _iso_seconds.clear()
        _iso_seconds[key] = parts
    if us:
        return f"{parts[0]}.{us:06d}{parts[1]}"
    return parts[0] + parts[1]


def _row(record: Record) -> tuple[Any, ...]:
    if record.row is not None:
        return record.row  # made by the decoder's fast path
    n = _NULL
    m = record.message
    tls_subject: Any = record.tls_subject
    tls_fingerprint: Any = record.tls_fingerprint
    if tls_subject is None:
        tls_subject = n
    if tls_fingerprint is None:
        tls_fingerprint = n
    msg_bytes: Any = record.msg_bytes
    if msg_bytes is None:
        msg_bytes = n
    error: Any = record.error
    if error is None:
        error = n
    if m is None:
        at = record.received_at
        return (at, at, n, n, n, n, n, n, n, n, n, n, msg_bytes, 0, record.raw, error,
                record.transport, record.peer, record.listener, tls_subject, tls_fingerprint,
                n)  # fmt: skip
    ts = m.timestamp
    when = message_time(m, record.received_at)
    timestamp: Any = n if ts is None else _isoformat(ts, when)
    facility = m.facility
    severity = m.severity
    version = m.version
    hostname = m.hostname
    app_name = m.app_name
    procid = m.procid
    msgid = m.msgid
    msg = m.msg
    return (
        record.received_at,
        when,
        timestamp,
        n if facility is None else int(facility),  # a plain int binds twice as fast
        n if severity is None else int(severity),
        n if version is None else version,
        n if hostname is None else hostname,
        n if app_name is None else app_name,
        n if procid is None else procid,
        n if msgid is None else msgid,
        sd_to_json(m.structured_data) if m.structured_data else n,
        n if msg is None else msg,
        msg_bytes,
        1 if m.bom else 0,
        record.raw,
        error,
        record.transport,
        record.peer,
        record.listener,
        tls_subject,
        tls_fingerprint,
        json.dumps(m.extra, ensure_ascii=False, default=str) if m.extra else n,
    )


#: a record as the row `Store.insert_rows` takes: plain values, `_NULL` for NULL
make_row = _row


def record_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Record:
    (
        rowid,
        received_at,
        _time,
        timestamp,
        facility,
        severity,
        version,
        hostname,
        app_name,
        procid,
        msgid,
        sd,
        msg,
        msg_bytes,
        bom,
        raw,
        error,
        transport,
        peer,
        listener,
        tls_subject,
        tls_fingerprint,
        extra,
    ) = row
    message = message_from_values(
        timestamp, facility, severity, version, hostname, app_name, procid, msgid, sd, msg,
        bom, raw, error, extra,
    )  # fmt: skip
    return Record(
        raw=bytes(raw),
        received_at=received_at,
        transport=transport,
        peer=peer,
        listener=listener,
        message=message,
        error=error,
        msg_bytes=None if msg_bytes is None else bytes(msg_bytes),
        tls_subject=tls_subject,
        tls_fingerprint=tls_fingerprint,
        id=rowid,
    )


def statements(script: str) -> list[str]:
    """The statements of the schema (triggers hold semicolons, so split on `END;` too)."""
    out: list[str] = []
    buf = ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        stripped = line.strip()
        if stripped == "END;" or (stripped.endswith(";") and "BEGIN" not in buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
