"""The decoder's fast path (`collector.fastpath`) stores what the general path stores.

For every frame of a corpus of common shapes and near-misses: the row the fast path makes (when
it takes the frame) equals `make_row` of the record built by `parse_frame` (structured data as its
RFC 5424 text instead of JSON: the same elements when read), the counts agree, and
the record's message (built from the row on demand) equals the parsed message.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from syslogkit.collector.decode import Decoder, parse_frame
from syslogkit.collector.fastpath import fast_row
from syslogkit.collector.nats.wire import subject_for
from syslogkit.collector.record import FROM_ROW, Record, record_to_json, sd_from_column
from syslogkit.collector.stats import ListenerStats
from syslogkit.collector.store import Filters, Store, make_row

RFC5424 = [
    b"<165>1 2026-01-02T03:04:05.123456Z host app 1234 ID47 - hello",
    b"<165>1 2026-01-02T03:04:05.000000Z host app 1234 ID47 - zero fraction",
    b"<165>1 2026-01-02T03:04:05.5Z host app - - - short fraction",
    b"<165>1 2026-01-02T03:04:05.120Z host app - - - trailing zeros",
    b"<165>1 2026-01-02T03:04:05+05:30 h a p m - offset",
    b"<165>1 2026-01-02T03:04:05-00:00 h a p m - minus zero",
    b"<0>1 - - - - - -",
    b"<191>999 - - - - - - max pri and version",
    b"<13>1 2026-01-02T03:04:05Z h a p m -",
    b"<13>1 2026-01-02T03:04:05Z h a p m - ",
    b"<13>1 2026-01-02T03:04:05Z h a p m - \xef\xbb\xbfbom msg",
    b"<13>1 2026-01-02T03:04:05Z h a p m - \xef\xbb\xbf",
    b'<13>1 2026-01-02T03:04:05Z h a p m [ex@1 a="1" b="x y"] with sd',
    b'<13>1 2026-01-02T03:04:05Z h a p m [ex@1 a="q\\"uote" b="back\\\\slash" c="br\\]"] esc',
    b'<13>1 2026-01-02T03:04:05Z h a p m [ex@1 a="\\n stays"][other@2][x@3 k=""] many',
    b'<13>1 2026-01-02T03:04:05Z h a p m [ex@1 a="1"][ex@1 a="2"] duplicate id',
    b"<13>1 2026-01-02T03:04:05Z h a p m [ex@1] no params",
    b'<13>1 2026-01-02T03:04:05Z h a p m [ex@1 a="1"]no space',
    b"<13>1 2026-02-30T03:04:05Z h a p m - impossible date",
    b"<13>1 0000-01-01T00:00:00Z h a p m - year zero",
    b"<13>1 2026-01-02T03:04:05.1234567Z h a p m - seven digits",
    b"<13>1 2026-01-02T03:04:60Z h a p m - leap second",
    b"<13>1 2026-01-02T03:04:05 h a p m - no offset",
    b"<013>1 - - - - - - leading zero pri",
    b"<192>1 - - - - - - pri too big",
    b"<13>1  2026-01-02T03:04:05Z h a p m - two spaces",
    b"<13>1 2026-01-02T03:04:05Z h\xc3\xa9 a p m - non ascii host",
    b"<13>1 2026-01-02T03:04:05Z h a p m - caf\xc3\xa9 \xe2\x82\xac",
    b"<13>1 2026-01-02T03:04:05Z h a p m - bad \xff utf8",
    b"<13>1 2026-01-02T03:04:05Z h a p m - \xef\xbf\xbd replacement char",
    b"<13>1 2026-01-02T03:04:05Z " + b"h" * 256 + b" a p m - long host",
    b"<13>1 2026-01-02T03:04:05Z h " + b"a" * 49 + b" p m - long app",
    b"<13>1 2026-01-02T03:04:05Z h a p " + b"m" * 33 + b" - long msgid",
    b"<13>1 2026-01-02T03:04:05Z -h a- -p- m - dashes",
    b"<13>1 2026-01-02T03:04:05Z h a p m [" + b"n" * 33 + b' a="1"] long sd id',
    b"<13>2 2026-01-02T03:04:05Z h a p m - version two",
    b"<13>1 2026-01-02T03:04:05Z h a p m - line\nbreak",
    b"<165>1 2026-01-02T03:04:05.123456Z host app 1234 ID47 -",
]

BSD = [
    b"<38>2026-12-04T07:55:46 localhost prg00000[1234]: seq: 0000000000, thread: 0000",
    b"<38>2026-12-04T07:55:46.123 localhost prg00000[1234]: fraction",
    b"<38>2026-12-04T07:55:46.123456 host tag: no pid",
    b"<38>2026-12-04T07:55:46 host tag[]: empty pid",
    b"<38>2026-12-04T07:55:46 host tag[1]:   many spaces",
    b"<38>2026-12-04T07:55:46 host tag[1]:",
    b'<38>2026-12-04T07:55:46 host tag[1]: [origin@1 a="b"] sd after tag',
    b"<38>2026-12-04T07:55:46 host tag[1]: \xef\xbb\xbfbom",
    b"<38>2026-12-04T07:55:46 host tag[1]: bad \xff byte",
    b"<38>2026-12-04T07:55:46 host tag[1 2]: space in pid",
    b"<38>2026-12-04T07:55:46  host tag[1]: two spaces",
    b"<38>2026-12-04T07:55:46 host tag message without colon",
    b"<38>2026-12-04T07:55:46Z host tag[1]: with offset",
    b"<38>2026-12-04T07:55:46+01:00 host tag[1]: with offset",
    b"<38>2026-02-30T07:55:46 host tag[1]: impossible date",
    b"<38>2026-12-04T07:55:46.1234567 host tag[1]: seven digits",
    b"<038>2026-12-04T07:55:46 host tag[1]: leading zero",
    b"<192>2026-12-04T07:55:46 host tag[1]: pri too big",
    b"<0>2026-12-04T07:55:46 host tag[1]: pri zero",
    b"<38>2026-12-04t07:55:46 host tag[1]: lowercase t",
    b"<38>Dec  4 07:55:46 host tag[1]: classic bsd",
    b"<38>2026-12-04T07:55:46 h\xc3\xa9 t\xc3\xa4g[1]: utf8 host and tag",
    b"<38>2026-12-04T07:55:46 host tag[1]:msg right after colon",
    b"plain text, no pri",
    b"",
]

ZONES = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), ZoneInfo("Europe/Paris")]


def none_for_null(value: object) -> str | None:
    return None if value == -1 else str(value)


def slow_record(raw: bytes, zone: timezone | ZoneInfo) -> Record:
    message, error, msg_bytes = parse_frame(raw, reference=datetime.now(zone))
    return Record(raw, 1.5, "tcp", "127.0.0.1:1", "tcp://l", message, error, msg_bytes)


@pytest.mark.parametrize("zone", ZONES, ids=str)
@pytest.mark.parametrize("raw", RFC5424 + BSD)
def test_fast_row_equals_the_general_paths_row(raw: bytes, zone: timezone | ZoneInfo) -> None:
    row = fast_row(raw, zone, 1.5, ("tcp", "127.0.0.1:1", "tcp://l", -1, -1, -1))
    if row is None:
        return  # the general path takes it
    slow = slow_record(raw, zone)
    slow_row = make_row(slow)
    # the structured data: its RFC 5424 text here, JSON there; the same elements either way
    assert sd_from_column(none_for_null(row[10])) == sd_from_column(none_for_null(slow_row[10]))
    assert row[:10] + row[11:] == slow_row[:10] + slow_row[11:]
    fast = Record(raw, 1.5, "tcp", "127.0.0.1:1", "tcp://l", error=row[15] if row[15] != -1
                  else None, row=row)  # fmt: skip
    assert fast.status == slow.status
    assert fast.message == slow.message
    assert record_to_json(fast) == record_to_json(slow)


def test_the_common_shapes_take_the_fast_path() -> None:
    tail = ("udp", "p", "l", -1, -1, -1)
    assert fast_row(RFC5424[0], timezone.utc, 1.0, tail) is not None
    assert fast_row(RFC5424[12], timezone.utc, 1.0, tail) is not None
    assert fast_row(BSD[0], timezone.utc, 1.0, tail) is not None


def test_decoder_counts_fast_and_general_frames_alike() -> None:
    frames = RFC5424 + BSD
    fast = Decoder(ListenerStats("u"), transport="tcp", listener="l", max_frame=8192)
    records = [fast.record(raw, 1.0, "p") for raw in frames if raw]
    assert fast.stats.received == len(records)
    split = {"parsed": 0, "noted": 0, "unparsed": 0}
    for record in records:
        split[record.status] += 1
    assert (fast.stats.parsed, fast.stats.noted, fast.stats.unparsed) == tuple(split.values())


def test_structured_data_is_stored_as_text_and_read_back(tmp_path: object) -> None:
    raw = RFC5424[13]
    decoder = Decoder(ListenerStats("u"), transport="tcp", listener="l", max_frame=8192)
    record = decoder.record(raw, 1.0, "p")
    assert record.row is not None and record.row[10].startswith("[ex@1 ")
    with Store(f"{tmp_path}/s.db") as store:
        store.insert([record])
        store.commit()
        (back,) = store.query(Filters())
    assert back.message == slow_record(raw, timezone.utc).message
    assert back.message is not None
    assert back.message.structured_data == sd_from_column(record.row[10])
    assert dict(back.message.structured_data[0].params)["a"] == 'q"uote'


def test_an_edge_reads_a_fast_path_records_subject_without_building_its_message() -> None:
    decoder = Decoder(ListenerStats("u"), transport="tcp", listener="l", max_frame=8192)
    for raw in [f for f in RFC5424 + BSD if f]:
        record = decoder.record(raw, 1.0, "p")
        subject = subject_for("syslog", record)
        if record.row is not None:
            assert record._message is FROM_ROW, raw  # nothing built for the subject
        assert subject == subject_for("syslog", slow_record(raw, timezone.utc)), raw
