"""Properties of the RFC 5424 codec, with hypothesis.

- format then parse gives back every field of any valid message (non-ASCII MSG, SD values with
  `"` `\\` `]`, NILVALUEs, timestamps with their UTC offset);
- any bytes: strict raises nothing but ParseError, lenient raises nothing;
- the regex fast path and the position-by-position scanner agree on every input (same message,
  or the same error at the same column);
- max_size is never exceeded and never splits a UTF-8 sequence.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syslogkit.codec._rfc3339 import tz_for_minutes
from syslogkit.codec.message import Facility, ParseError, SDElement, Severity, SyslogMessage
from syslogkit.codec.rfc5424 import format_5424, parse_5424
from syslogkit.codec.rfc5424.scanner import StrictScanner

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PRINTUSASCII = st.characters(min_codepoint=33, max_codepoint=126)
SD_NAME_CHARS = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='="]')
TEXT_CHARS = st.one_of(
    st.characters(exclude_categories=["Cs"]), st.sampled_from(['"', "\\", "]", "[", "\ufeff"])
)


def header_field(limit: int) -> st.SearchStrategy[str | None]:
    return st.none() | st.text(PRINTUSASCII, min_size=1, max_size=limit).filter(lambda s: s != "-")


sd_names = st.text(SD_NAME_CHARS, min_size=1, max_size=32)
elements = st.builds(
    SDElement,
    sd_names,
    st.lists(st.tuples(sd_names, st.text(TEXT_CHARS, max_size=12)), max_size=4).map(tuple),
)
structured_data = st.lists(elements, max_size=3, unique_by=lambda e: e.id).map(tuple)
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(tz_for_minutes)
timestamps = st.none() | st.datetimes() | st.datetimes(timezones=offsets | st.just(timezone.utc))

messages = st.builds(
    SyslogMessage,
    facility=st.sampled_from(Facility),
    severity=st.sampled_from(Severity),
    version=st.integers(min_value=1, max_value=999),
    timestamp=timestamps,
    hostname=header_field(255),
    app_name=header_field(48),
    procid=header_field(128),
    msgid=header_field(32),
    structured_data=structured_data,
    msg=st.none() | st.text(TEXT_CHARS, max_size=60),
    bom=st.booleans(),
)


@SETTINGS
@given(messages)
def test_format_then_parse_gives_back_every_field(msg: SyslogMessage) -> None:
    back = parse_5424(format_5424(msg))
    for name in ("facility", "severity", "version", "hostname", "app_name", "procid", "msgid"):
        assert getattr(back, name) == getattr(msg, name), name
    assert back.structured_data == msg.structured_data
    if msg.timestamp is None:
        assert back.timestamp is None
    else:
        want = msg.timestamp
        if want.tzinfo is None:  # naive is written as UTC
            want = want.replace(tzinfo=timezone.utc)
        assert back.timestamp == want
        assert back.timestamp is not None and back.timestamp.utcoffset() == want.utcoffset()
    bom = msg.msg is not None and (msg.bom or not msg.msg.isascii())
    assert back.bom == bom
    assert back.msg == (None if msg.msg is None or (msg.msg == "" and not bom) else msg.msg)


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_raise_only_parse_error_in_strict_and_nothing_in_lenient(data: bytes) -> None:
    try:
        assert isinstance(parse_5424(data), SyslogMessage)
    except ParseError as exc:
        assert 1 <= exc.column <= len(data) + 1
    try:
        parse_5424(data, "best_effort", optional_priority=True, compliant_msg=True)
    except ParseError as exc:
        assert isinstance(exc.partial, SyslogMessage)
    assert isinstance(parse_5424(data, "lenient"), SyslogMessage)


NOISE = list(b' -[]"\\=<>019TZtz:.+\n\xef\xbb\xbf\xc3\xffa')


def _outcome(run: object) -> object:
    try:
        return run()  # type: ignore[operator]
    except ParseError as exc:
        return ("error", exc.column, exc.reason)


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A formatted message with a few bytes replaced, inserted or deleted."""
    data = bytearray(format_5424(draw(messages)))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        where = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from(NOISE))
        if action == "insert" or where == len(data):
            data.insert(where, byte)
        elif action == "replace":
            data[where] = byte
        else:
            del data[where]
    return bytes(data)


@SETTINGS
@given(near_valid(), st.booleans())
def test_fast_path_and_scanner_agree_on_every_input(data: bytes, optional: bool) -> None:
    fast = _outcome(lambda: parse_5424(data, optional_priority=optional))
    slow = _outcome(lambda: StrictScanner(data, False).run(optional, False))
    assert fast == slow
    lenient = parse_5424(data, "lenient")
    if isinstance(fast, SyslogMessage) and data == data.strip():
        assert lenient == fast


@SETTINGS
@given(messages, st.data())
def test_max_size_is_never_exceeded_and_never_splits_utf8(
    msg: SyslogMessage, data: st.DataObject
) -> None:
    full = format_5424(msg)
    floor = len(format_5424(replace(msg, structured_data=(), msg=None)))
    size = data.draw(st.integers(min_value=0, max_value=len(full) + 5))
    report: dict[str, int] = {}
    try:
        out = format_5424(msg, max_size=size, report=report)
    except ValueError:
        assert size < floor
        return
    assert len(out) <= size
    out.decode("utf-8")  # a split sequence would not decode
    assert (out == full) == (report == {})
    back = parse_5424(out)
    assert back.structured_data in (msg.structured_data, ())
    assert bool(report.get("sd_dropped")) == (back.structured_data != msg.structured_data)
    if back.msg is not None:
        assert msg.msg is not None and msg.msg.startswith(back.msg)


@SETTINGS
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), offsets)
def test_timestamps_keep_their_instant_and_offset(moment: datetime, zone: timezone) -> None:
    aware = moment.replace(tzinfo=zone)
    back = parse_5424(format_5424(SyslogMessage(timestamp=aware))).timestamp
    assert back == aware and back is not None and back.utcoffset() == aware.utcoffset()
