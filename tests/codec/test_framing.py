"""Stream framing: frame() for senders, FrameDecoder for receivers (RFC 6587 §3.4)."""

from __future__ import annotations

import pickle
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syslogkit.codec.framing import FrameDecoder, FramingError, frame

Item = bytes | FramingError


def decode(stream: bytes, framing: str = "auto", max_frame: int = 8192, **kw: int) -> list[Item]:
    decoder = FrameDecoder(framing, max_frame, **kw)
    return decoder.feed(stream) + decoder.end()


def decode_bytewise(stream: bytes, framing: str = "auto", max_frame: int = 8192) -> list[Item]:
    decoder = FrameDecoder(framing, max_frame)
    out: list[Item] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    return out + decoder.end()


def shape(items: list[Item]) -> list[object]:
    """Comparable form of decoder output."""
    return [
        item
        if isinstance(item, bytes)
        else ("error", item.kind, item.frame, item.truncated, item.reason)
        for item in items
    ]


# -- frame() ---------------------------------------------------------------------------------


def test_octet_frame_counts_octets_not_characters() -> None:
    payload = "<13>1 - - - - - - hellø".encode()
    assert frame(payload) == b"24 " + payload
    assert frame(payload, "octet") == b"24 " + payload


def test_octet_frame_carries_every_octet_unescaped() -> None:
    payload = b"<13>1 - - - - - - a\nb\0c\r\xff"
    assert frame(payload) == b"%d %s" % (len(payload), payload)


@pytest.mark.parametrize(
    ("framing", "trailer"), [("lf", b"\n"), ("nul", b"\0"), ("crlf", b"\r\n"), (b"\x1e", b"\x1e")]
)
def test_delimited_frame_of_clean_payload_is_payload_plus_trailer(
    framing: str | bytes, trailer: bytes
) -> None:
    assert frame(b"<13>1 - h a - - - hi", framing) == b"<13>1 - h a - - - hi" + trailer


@pytest.mark.parametrize("framing", ["lf", "nul", "crlf"])
def test_delimited_frame_escapes_lf_cr_nul_as_rsyslog_shows_them(framing: str) -> None:
    # rsyslog displays a received LF as #012 (escapeControlCharactersOnReceive): same text here.
    out = frame(b"<13>1 - h a - - - one\ntwo\r\0end", framing)
    assert out.startswith(b"<13>1 - h a - - - one#012two#015#000end")
    assert out.count(b"\n") + out.count(b"\0") == 1


def test_custom_trailer_octets_are_escaped_inside_the_message() -> None:
    assert frame(b"a]b\nc", b"]") == b"a#135b#012c]"
    assert frame(b"x\x1e\x1fy", b"\x1e\x1f") == b"x#036#037y\x1e\x1f"


@pytest.mark.parametrize("trailer", [b"", b"#", b"7", b"\n0"])
def test_custom_trailer_using_the_escape_alphabet_is_refused(trailer: bytes) -> None:
    with pytest.raises(ValueError):
        frame(b"x", trailer)


def test_unknown_framing_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown framing"):
        frame(b"x", "cr")


def test_octet_frame_of_an_empty_message_is_refused() -> None:
    # "0 " is no MSG-LEN (RFC 6587 §3.4.1: NONZERO-DIGIT *DIGIT): receivers would read it as text.
    with pytest.raises(ValueError, match="empty"):
        frame(b"")


@given(st.binary(min_size=1, max_size=300))
def test_octet_frame_round_trips_through_the_decoder(payload: bytes) -> None:
    expected = payload[:-1] if payload.endswith(b"\n") else payload  # one counted LF is dropped
    assert decode(frame(payload)) == ([expected] if expected else [])
    assert decode(frame(payload), "octet") == ([expected] if expected else [])


@given(st.binary(max_size=300), st.sampled_from(["lf", "nul", "crlf"]))
def test_delimited_frame_always_decodes_as_exactly_one_frame(payload: bytes, framing: str) -> None:
    payload = b"<13>" + payload  # formatted messages start with a PRI
    items = decode(frame(payload, framing))
    assert len(items) == 1
    assert isinstance(items[0], bytes)
    assert not set(items[0]) & set(b"\n\r\0")
    if not set(payload) & set(b"\n\r\0"):
        assert items[0] == payload


# -- FrameDecoder: detection -------------------------------------------------------------------


def test_auto_detects_the_method_frame_by_frame() -> None:
    stream = b"5 <1>ab<2>cd\n3 <3>\x00<4>ef\r\n"
    assert decode(stream) == [b"<1>ab", b"<2>cd", b"<3>", b"<4>ef"]


def test_count_must_start_with_a_nonzero_digit_and_end_with_sp_in_auto_mode() -> None:
    # RFC 6587 §3.4.1: MSG-LEN = NONZERO-DIGIT *DIGIT, then SP.
    assert decode(b"05 hello\n2bc\n12\n") == [b"05 hello", b"2bc", b"12"]


def test_forced_octet_accepts_a_zero_padded_count() -> None:
    assert decode(b"005 hello", "octet") == [b"hello"]


def test_count_above_max_count_is_read_as_text_in_auto_mode() -> None:
    # rsyslog imtcp: "frame too large ... change to octet stuffing".
    line = b"20240101 backup finished"
    assert decode(line + b"\n5 hello") == [line, b"hello"]
    assert decode(b"7 abc\n", max_count=6) == [b"7 abc"]


def test_octet_frame_drops_one_trailing_lf_counted_by_rsyslog_forwarders() -> None:
    assert decode(b"4 abc\n5 abc\n\n") == [b"abc", b"abc\n"]


def test_delimited_frame_drops_one_cr_before_lf_only() -> None:
    assert decode(b"<1>a\r\n<2>b\r\r\n<3>c\rd\n") == [b"<1>a", b"<2>b\r", b"<3>c\rd"]
    assert decode(b"<1>a\r\0") == [b"<1>a\r"]


def test_blank_lines_and_empty_frames_are_skipped() -> None:
    assert decode(b"\n\r\n\0<1>a\n\n1 \n") == [b"<1>a"]


def test_nul_is_a_delimiter_in_auto_mode() -> None:
    assert decode(b"<1>a\0<2>b\0") == [b"<1>a", b"<2>b"]


def test_forced_lf_keeps_nul_and_forced_nul_keeps_lf() -> None:
    assert decode(b"<1>a\0b\n12 x\n", "lf") == [b"<1>a\0b", b"12 x"]
    # The stdlib SysLogHandler over TCP: "<PRI>msg\0", tracebacks included.
    assert decode(b"<11>Traceback:\n  line\n\x00<12>x\x00", "nul") == [
        b"<11>Traceback:\n  line\n",
        b"<12>x",
    ]


def test_forced_octet_reports_a_missing_count_and_resyncs_at_the_next_lf() -> None:
    items = decode(b"5 hello<1>no count\n5 world", "octet")
    assert shape(items)[0] == b"hello"
    error = items[1]
    assert isinstance(error, FramingError)
    assert error.kind == FramingError.BAD_COUNT
    assert error.frame == b"<1>no count"
    assert items[2] == b"world"


def test_forced_octet_skips_a_lone_lf_between_frames() -> None:
    assert decode(b"5 hello\n\r\n5 world", "octet") == [b"hello", b"world"]


@pytest.mark.parametrize("stream", [b"0 x\n5 hello", b"9999999 x\n5 hello", b"12x\n5 hello"])
def test_forced_octet_bad_count_is_one_error_then_frames_continue(stream: bytes) -> None:
    items = decode(stream, "octet")
    assert isinstance(items[0], FramingError)
    assert items[0].kind == FramingError.BAD_COUNT
    assert items[1:] == [b"hello"]


def test_errors_are_returned_in_place_never_raised_over_other_frames() -> None:
    stream = (
        frame(b"<1>one")
        + b"garbage without a count\n"
        + frame(b"<2>two")
        + frame(b"<3>" + b"y" * 30)
        + frame(b"<4>end")
    )
    items = decode(stream, "octet", max_frame=10)
    assert [i if isinstance(i, bytes) else (i.kind, i.frame, i.truncated) for i in items] == [
        b"<1>one",
        ("bad_count", b"garbage wi", True),
        b"<2>two",
        ("oversize", b"<3>yyyyyyy", True),
        b"<4>end",
    ]


# -- FrameDecoder: oversize ----------------------------------------------------------------------


@pytest.mark.parametrize("feeder", [decode, decode_bytewise])
def test_oversize_octet_frame_is_truncated_flagged_and_next_frame_intact(feeder: object) -> None:
    big = b"<13>" + bytes(range(65, 91)) * 3
    stream = frame(big) + frame(b"<14>next")
    items = feeder(stream, "auto", 16)  # type: ignore[operator]
    assert len(items) == 2
    error, following = items
    assert isinstance(error, FramingError)
    assert error.truncated and error.kind == FramingError.OVERSIZE
    assert error.frame == big[:16]
    assert following == b"<14>next"


@pytest.mark.parametrize("feeder", [decode, decode_bytewise])
def test_oversize_delimited_frame_is_truncated_flagged_and_next_frame_intact(
    feeder: object,
) -> None:
    stream = b"<13>" + b"z" * 100 + b"\n<14>next\n"
    items = feeder(stream, "auto", 16)  # type: ignore[operator]
    assert shape(items) == [
        ("error", "oversize", (b"<13>" + b"z" * 100)[:16], True, items[0].reason),  # type: ignore[union-attr]
        b"<14>next",
    ]


def test_oversize_frame_is_reported_before_its_end_arrives_and_not_buffered() -> None:
    decoder = FrameDecoder(max_frame=100)
    items = decoder.feed(b"100000 " + b"a" * 150)  # count below max_count: octet-counted
    assert len(items) == 1 and isinstance(items[0], FramingError) and items[0].truncated
    for _ in range(99):
        assert decoder.feed(b"b" * 1000) == []
        assert decoder.buffered == 0
    assert decoder.feed(b"b" * 850 + b"5 after") == [b"after"]


def test_frame_of_max_frame_octets_plus_counted_lf_is_not_oversize() -> None:
    body = b"<1>" + b"q" * 97
    assert decode(frame(body + b"\n"), max_frame=100) == [body]
    assert decode(body + b"\r\n", max_frame=100) == [body]
    assert isinstance(decode(body + b"q\n", max_frame=100)[0], FramingError)


# -- FrameDecoder: end of stream -------------------------------------------------------------------


def test_end_returns_unfinished_frames_as_errors_holding_their_bytes() -> None:
    for stream, framing, kept in [
        (b"16 <1>1", "auto", b"<1>1"),
        (b"<1>1 - - - - - -", "auto", b"<1>1 - - - - - -"),
        (b"123", "auto", b"123"),
        (b"1", "octet", b"1"),
    ]:
        decoder = FrameDecoder(framing)
        assert decoder.feed(stream) == []
        (error,) = decoder.end()
        assert isinstance(error, FramingError)
        assert error.kind == FramingError.INCOMPLETE
        assert error.frame == kept
        assert not error.truncated


def test_end_truncates_and_flags_an_unfinished_frame_longer_than_max_frame() -> None:
    # max_frame octets and a CR (that might have been a CRLF trailer), then the stream ends.
    (error,) = decode(b"<1>abc\r", max_frame=6)
    assert isinstance(error, FramingError)
    assert error.truncated and error.frame == b"<1>abc"


def test_a_delimited_frame_without_trailer_at_end_says_trailer() -> None:
    (error,) = decode(b"<1>last")
    assert isinstance(error, FramingError)
    assert "trailer" in error.reason


def test_end_resets_the_decoder_for_a_new_stream() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"10 abc")
    decoder.end()
    assert decoder.buffered == 0
    assert decoder.feed(b"3 abc") == [b"abc"]
    assert decoder.end() == []


def test_empty_stream_gives_nothing() -> None:
    assert decode(b"") == []


def test_feed_accepts_bytearray_and_memoryview() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(bytearray(b"3 abc")) == [b"abc"]
    assert decoder.feed(memoryview(b"<1>x\n")) == [b"<1>x"]


def test_framing_error_survives_pickling() -> None:
    error = FramingError("why", b"kept", truncated=True, kind=FramingError.OVERSIZE)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.frame, copy.truncated) == ("why", b"kept", True)
    assert copy.kind == "oversize"
    assert isinstance(copy, ValueError)


def test_decoder_refuses_an_unknown_framing() -> None:
    with pytest.raises(ValueError):
        FrameDecoder("crlf")


# -- properties ------------------------------------------------------------------------------------

_TEXT = st.text(string.ascii_letters + " <>-", max_size=40).map(str.encode)
_PIECE = st.one_of(
    _TEXT.map(lambda p: frame(b"<1>" + p)),
    _TEXT.map(lambda p: frame(b"<2>" + p + b"\n")),
    _TEXT.map(lambda p: frame(b"<3>" + p, "lf")),
    _TEXT.map(lambda p: frame(b"<4>" + p, "nul")),
    _TEXT.map(lambda p: frame(b"<5>" + p, "crlf")),
    st.binary(max_size=30),
    st.just(b"\n"),
    st.integers(1, 99).map(lambda n: b"%d " % n),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_PIECE, max_size=12).map(b"".join),
    st.lists(st.integers(0, 10_000), max_size=20),
    st.sampled_from(["auto", "octet", "lf", "nul"]),
    st.integers(1, 40),
)
def test_any_split_of_a_stream_gives_the_same_frames_as_feeding_it_whole(
    stream: bytes, cuts: list[int], framing: str, max_frame: int
) -> None:
    whole = decode(stream, framing, max_frame)
    decoder = FrameDecoder(framing, max_frame)
    pieces: list[Item] = []
    for chunk in _split(stream, cuts):
        pieces += decoder.feed(chunk)
    pieces += decoder.end()
    assert shape(pieces) == shape(whole)
    assert shape(decode_bytewise(stream, framing, max_frame)) == shape(whole)


@settings(max_examples=300)
@given(
    st.lists(st.binary(max_size=80), max_size=12),
    st.sampled_from(["auto", "octet", "lf", "nul"]),
    st.integers(1, 64),
)
def test_arbitrary_bytes_never_raise_and_the_buffer_stays_bounded(
    chunks: list[bytes], framing: str, max_frame: int
) -> None:
    decoder = FrameDecoder(framing, max_frame)
    items: list[Item] = []
    for chunk in chunks:
        items += decoder.feed(chunk)
        assert decoder.buffered <= max_frame + 1 + 7  # + a partial count (max_count 200000)
    items += decoder.end()
    assert decoder.buffered == 0
    for item in items:
        kept = item if isinstance(item, bytes) else item.frame
        assert isinstance(kept, bytes) and 0 < len(kept) <= max_frame


# -- linear work -----------------------------------------------------------------------------------


def test_many_small_frames_fed_one_byte_at_a_time_are_scanned_in_linear_work() -> None:
    stream = b"".join(
        frame(b"<13>1 - host app - - - message %d" % i, ("octet", "lf", "nul", "crlf")[i % 4])
        for i in range(2000)
    )
    decoder = FrameDecoder()
    count = 0
    for i in range(len(stream)):
        count += len(decoder.feed(stream[i : i + 1]))
    assert count == 2000
    assert decoder.bytes_fed == len(stream)
    assert decoder.bytes_scanned <= 3 * decoder.bytes_fed


@pytest.mark.parametrize("framing", ["octet", "lf"])
def test_one_large_frame_fed_in_small_chunks_is_scanned_in_linear_work(framing: str) -> None:
    payload = b"<13>" + b"x" * 60_000
    stream = frame(payload, framing)
    decoder = FrameDecoder(max_frame=65_536)
    out: list[Item] = []
    for i in range(0, len(stream), 3):
        out += decoder.feed(stream[i : i + 3])
        assert decoder.buffered <= 65_536 + 8
    assert out == [payload]
    assert decoder.bytes_scanned <= 2 * decoder.bytes_fed
