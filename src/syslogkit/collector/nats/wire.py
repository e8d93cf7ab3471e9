"""Records in a JetStream message, and back.

One message carries a batch of records (several records per publish: a publish costs the
client about 80 us, a record a few). The payload is a one-line JSON header, then the raw bytes
of every record back to back:

```
SKB1\n{"ids": ["<edge>-<n>"], "strings": [...], "records": [[...], ...]}\n<raw><raw>...
```

Each record row is `[received_at, transport, peer, listener, tls_subject, tls_fingerprint,
error, zone_offset, raw_length]` with the repeated strings as indexes into `strings` (-1:
None). The store parses `raw` again (the edge's parse is not shipped: raw is the truth and the
parse is cheaper than its serialisation); `error` is the edge's note (framing notes cannot be
found again from raw); `zone_offset` is the UTC offset, in seconds, the edge read an RFC 3164
timestamp in, so that the store reads it in the same zone.

A record's key is the message id plus its index (`edge-7/12`): the message id is the
`Nats-Msg-Id` header (JetStream drops a re-publish with the same id within its duplicate
window); the store records the message id with the message's rows and recognises a
redelivered message by it (`nats.source`).

`decode_batch` raises `WireError` for anything that is not such a payload, whatever is wrong
with it (a field of the wrong type, an index out of range): never another exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..record import Record

__all__ = ["MAGIC", "Batch", "decode_batch", "encode_batch", "subject_for"]

MAGIC = b"SKB1\n"

_FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "audit", "alert", "clock",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
_SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


def subject_for(prefix: str, record: Record) -> str:
    """`<prefix>.<facility>.<severity>` (`syslog.local0.err`); `unknown` for a part the frame
    did not have (no PRI)."""
    m = record.message
    facility = "unknown" if m is None or m.facility is None else _FACILITIES[int(m.facility)]
    severity = "unknown" if m is None or m.severity is None else _SEVERITIES[int(m.severity)]
    return f"{prefix}.{facility}.{severity}"


def _zone_offset(record: Record) -> int | None:
    m = record.message
    if m is None or m.version is not None or m.timestamp is None:
        return None
    offset = m.timestamp.utcoffset()
    return None if offset is None else int(offset.total_seconds())


def encode_batch(msg_id: str, records: Sequence[Record]) -> bytes:
    """One message's payload for `records` (see the module docstring)."""
    strings: dict[str | None, int] = {None: -1}
    rows: list[list[Any]] = []
    raws: list[bytes] = []

    def ref(value: str | None) -> int:
        index = strings.get(value)
        if index is None:
            index = strings[value] = len(strings) - 1
        return index

    for r in records:
        rows.append(
            [
                r.received_at,
                ref(r.transport),
                ref(r.peer),
                ref(r.listener),
                ref(r.tls_subject),
                ref(r.tls_fingerprint),
                r.error,
                _zone_offset(r),
                len(r.raw),
            ]
        )
        raws.append(r.raw)
    table = [s for s in strings if s is not None]
    header = json.dumps(
        {"id": msg_id, "strings": table, "records": rows},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return b"".join([MAGIC, header.encode("utf-8"), b"\n", *raws])


@dataclass(frozen=True, slots=True)
class Shipped:
    """One record as the edge shipped it: what the store needs to build its `Record`."""

    key: str
    raw: bytes
    received_at: float
    transport: str
    peer: str
    listener: str
    tls_subject: str | None
    tls_fingerprint: str | None
    error: str | None
    zone_offset: int | None

    def reference(self) -> datetime | None:
        """The instant and zone the edge read a zoneless timestamp in (None: not needed)."""
        if self.zone_offset is None:
            return None
        zone = timezone(timedelta(seconds=self.zone_offset))
        return datetime.fromtimestamp(self.received_at, zone)


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded message: its id and its records."""

    msg_id: str
    records: tuple[Shipped, ...]


class WireError(ValueError):
    """A message that is not a syslogkit batch (it is acknowledged and counted, not stored)."""


def decode_batch(payload: bytes) -> Batch:
    """The inverse of `encode_batch`; `WireError` for anything else (never another error:
    every field is checked for its type and range before it is used)."""
    if not payload.startswith(MAGIC):
        raise WireError("not a syslogkit batch (no SKB1 header)")
    end = payload.find(b"\n", len(MAGIC))
    if end < 0:
        raise WireError("batch header not terminated")
    try:
        header = json.loads(payload[len(MAGIC) : end])
        msg_id = str(header["id"])
        table = header["strings"]
        rows = header["records"]
        if not isinstance(table, list) or not all(isinstance(t, str) for t in table):
            raise TypeError("strings is not a list of strings")
        if not isinstance(rows, list):
            raise TypeError("records is not a list")
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise WireError(f"bad batch header: {exc}") from None
    strings: list[str | None] = [*table, None]  # index -1 is None
    return Batch(msg_id, tuple(_records(msg_id, strings, rows, payload, end + 1)))


def _string(strings: list[str | None], index: Any) -> str | None:
    if type(index) is not int or not -1 <= index < len(strings) - 1:
        raise ValueError(f"string index {index!r} out of range")
    return strings[index]


def _records(
    msg_id: str, strings: list[str | None], rows: list[Any], payload: bytes, pos: int
) -> Iterator[Shipped]:
    for index, row in enumerate(rows):
        try:
            at, transport, peer, listener, subject, fpr, error, offset, size = row
            received_at = float(at)
            if not math.isfinite(received_at):
                raise ValueError(f"received_at {at!r}")
            if type(size) is not int or size < 0:
                raise ValueError(f"size {size!r}")
            if error is not None and not isinstance(error, str):
                raise ValueError(f"error {error!r}")
            if offset is not None and (type(offset) is not int or not -86400 < offset < 86400):
                raise ValueError(f"zone offset {offset!r}")
            texts = [_string(strings, i) for i in (transport, peer, listener, subject, fpr)]
        except (ValueError, TypeError) as exc:
            raise WireError(f"bad record {index}: {exc}") from None
        raw = payload[pos : pos + size]
        if len(raw) != size:
            raise WireError(f"record {index}: payload cut short")
        pos += size
        yield Shipped(
            f"{msg_id}/{index}",
            raw,
            received_at,
            texts[0] or "-",
            texts[1] or "-",
            texts[2] or "-",
            texts[3],
            texts[4],
            error,
            offset,
        )
