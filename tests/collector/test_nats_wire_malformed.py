"""A JetStream payload that is not a good syslogkit batch raises `WireError`, never anything
else (the store counts and keeps such a message instead of stopping: test_nats_store.py)."""

from __future__ import annotations

import json
import random

from syslogkit.collector.nats.wire import MAGIC, WireError, decode_batch, encode_batch
from syslogkit.collector.record import Record


def good_payload() -> bytes:
    records = [
        Record(
            raw=f"<14>1 - h app - - - r {i}".encode(),
            received_at=1_700_000_000.0 + i,
            transport="tcp",
            peer="127.0.0.1",
            listener="tcp://127.0.0.1:5514",
            message=None,
            error="a note" if i else None,
        )
        for i in range(3)
    ]
    return encode_batch("edge-1", records)


def with_header(header: object, body: bytes = b"abc") -> bytes:
    return MAGIC + json.dumps(header).encode() + b"\n" + body


ROW = [1.5, -1, -1, -1, -1, -1, None, None, 3]
WRONG = ["soon", None, [], {}, 7, -2, 1e308 * 10, True, "3", -1]


def malformed() -> list[bytes]:
    out = [
        b"",
        b"not a batch",
        MAGIC,
        MAGIC + b"{",
        with_header([]),
        with_header({"id": "x"}),
        with_header({"id": "x", "strings": [], "records": 7}),
        with_header({"id": "x", "strings": [1, 2], "records": []}),
        with_header({"id": "x", "strings": "ab", "records": []}),
        with_header({"id": "x", "strings": [], "records": [ROW[:5]]}),
        with_header({"id": "x", "strings": [], "records": [7]}),
        with_header({"id": "x", "strings": [], "records": [ROW]}, b"a"),  # cut short
        MAGIC + b"[" * 100_000 + b"\n",  # nested past the JSON decoder's recursion limit
    ]
    for column, wrong in ((c, w) for c in range(len(ROW)) for w in WRONG):
        row = list(ROW)
        row[column] = wrong
        out.append(with_header({"id": "x", "strings": ["t"], "records": [row]}))
    good = good_payload()
    rng = random.Random(23)
    for _ in range(300):  # bytes flipped or cut anywhere in a good payload
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        out.append(bytes(data[: rng.randint(0, len(data))]))
    return out


def test_every_malformed_payload_raises_wire_error_and_nothing_else() -> None:
    errors = 0
    for payload in malformed():
        try:
            decode_batch(payload)
        except WireError:
            errors += 1
    assert errors > 100  # most are refused; a few flips land in raw bytes, still a batch


def test_a_good_payload_still_decodes() -> None:
    batch = decode_batch(good_payload())
    assert batch.msg_id == "edge-1" and len(batch.records) == 3
    assert batch.records[1].error == "a note" and batch.records[0].transport == "tcp"
