"""RFC 5424 codec: formatting rules and parser behaviour beyond the shared vectors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from syslogkit.codec._rfc3339 import TimestampError, scan_timestamp, tz_for_minutes
from syslogkit.codec.message import Facility, ParseError, SDElement, Severity, SyslogMessage
from syslogkit.codec.rfc5424 import (
    format_5424,
    format_timestamp,
    parse_5424,
    sanitize_field,
)
from syslogkit.codec.rfc5424.scanner import StrictScanner

UTC = timezone.utc
T0 = datetime(2003, 10, 11, 22, 14, 15, 3000, UTC)
BOM = b"\xef\xbb\xbf"


def message(**fields: object) -> SyslogMessage:
    base: dict[str, object] = {
        "facility": Facility.LOCAL4,
        "severity": Severity.NOTICE,
        "timestamp": T0,
        "hostname": "host",
        "app_name": "app",
        "procid": "42",
        "msgid": "ID47",
    }
    base.update(fields)
    return SyslogMessage(**base)  # type: ignore[arg-type]


# -- formatting: the wire text ------------------------------------------------------------------


def test_default_message_formats_as_user_notice_with_every_field_nil() -> None:
    assert format_5424(SyslogMessage()) == b"<13>1 - - - - - -"


def test_rfc_example_with_two_sd_elements_and_msg_is_written_exactly() -> None:
    msg = message(
        procid=None,
        hostname="mymachine.example.com",
        app_name="evntslog",
        structured_data=(
            SDElement(
                "exampleSDID@32473",
                (("iut", "3"), ("eventSource", "Application"), ("eventID", "1011")),
            ),
            SDElement("examplePriority@32473", (("class", "high"),)),
        ),
        msg="An application event log entry...",
    )
    assert format_5424(msg) == (
        b"<165>1 2003-10-11T22:14:15.003000Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        b'[examplePriority@32473 class="high"] An application event log entry...'
    )


def test_facility_and_severity_none_are_written_as_user_notice() -> None:
    out = format_5424(message(facility=None, severity=None))
    assert out.startswith(b"<13>1 ")


def test_version_none_is_written_as_1_and_out_of_range_version_is_refused() -> None:
    assert format_5424(message(version=None)).startswith(b"<165>1 ")
    with pytest.raises(ValueError, match="VERSION"):
        format_5424(message(version=1000))


def test_out_of_range_facility_is_refused_not_masked() -> None:
    with pytest.raises(ValueError, match="out of range"):
        format_5424(message(facility=24))


def test_header_fields_replace_each_non_printusascii_character_with_a_question_mark() -> None:
    out = format_5424(message(hostname="my host", app_name="café", procid="a\tb", msgid="x\ny"))
    assert b" my?host caf? a?b x?y " in out
    assert sanitize_field("naïve\x7f", 48) == "na?ve?"


def test_header_fields_are_cut_to_their_rfc_limits() -> None:
    out = format_5424(
        message(hostname="h" * 300, app_name="a" * 60, procid="p" * 200, msgid="m" * 40)
    )
    fields = out.split(b" ")
    assert [len(f) for f in fields[2:6]] == [255, 48, 128, 32]


def test_empty_or_none_header_fields_become_nilvalue() -> None:
    out = format_5424(message(hostname="", app_name=None, procid="", msgid=None, timestamp=None))
    assert out == b"<165>1 - - - - - -"
    assert sanitize_field("", 10) == "-" and sanitize_field(None, 10) == "-"


def test_non_str_procid_is_written_as_its_text() -> None:
    assert b" 1234 " in format_5424(message(procid=1234))


def test_sd_names_replace_equals_space_bracket_and_quote_and_are_cut_to_32() -> None:
    element = SDElement('a=b c]d"e@1', (("n=a me" + "x" * 40, "v"),))
    out = format_5424(message(structured_data=(element,)))
    name = "n?a?me" + "x" * 26
    assert f'[a?b?c?d?e@1 {name}="v"]'.encode() in out
    assert parse_5424(out).structured_data == (SDElement("a?b?c?d?e@1", ((name, "v"),)),)


def test_empty_sd_name_becomes_nilvalue_character() -> None:
    out = format_5424(message(structured_data=(SDElement("", (("", "v"),)),)))
    assert b'[- -="v"]' in out


def test_sd_values_escape_only_quote_backslash_and_closing_bracket() -> None:
    value = 'q" b\\ c] o[ n\\n'
    out = format_5424(message(structured_data=(SDElement("x@1", (("k", value),)),)))
    assert b'k="q\\" b\\\\ c\\] o[ n\\\\n"' in out
    assert parse_5424(out).structured_data[0].params == (("k", value),)


def test_sd_values_keep_non_ascii_as_utf8_and_are_never_cut() -> None:
    value = "κόσμε" * 100
    out = format_5424(message(structured_data=(SDElement("x@1", (("k", value),)),)))
    assert value.encode() in out


def test_empty_structured_data_is_nilvalue() -> None:
    assert format_5424(message(structured_data=())).endswith(b" ID47 -")


# -- formatting: timestamps ---------------------------------------------------------------------


def test_timestamp_has_six_fraction_digits_and_z_for_utc() -> None:
    assert format_timestamp(datetime(2003, 10, 11, 22, 14, 15, tzinfo=UTC)) == (
        "2003-10-11T22:14:15.000000Z"
    )


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(hours=2), "+02:00"),
        (timedelta(hours=-7), "-07:00"),
        (timedelta(hours=5, minutes=45), "+05:45"),
        (timedelta(hours=-23, minutes=-59), "-23:59"),
    ],
)
def test_timestamp_keeps_the_datetimes_real_utc_offset(offset: timedelta, text: str) -> None:
    dt = datetime(2003, 8, 24, 5, 14, 15, 3, timezone(offset))
    assert format_timestamp(dt) == "2003-08-24T05:14:15.000003" + text
    assert parse_5424(format_5424(message(timestamp=dt))).timestamp == dt


def test_naive_timestamp_is_taken_as_utc() -> None:
    assert format_timestamp(datetime(2020, 1, 2, 3, 4, 5)) == "2020-01-02T03:04:05.000000Z"


def test_offset_with_seconds_is_converted_to_utc_since_rfc3339_cannot_write_it() -> None:
    lmt = timezone(timedelta(minutes=17, seconds=30))
    dt = datetime(1900, 1, 1, 0, 17, 30, tzinfo=lmt)
    assert format_timestamp(dt) == "1900-01-01T00:00:00.000000Z"


def test_timestamp_none_is_nilvalue() -> None:
    assert format_timestamp(None) == "-"


# -- formatting: MSG and BOM --------------------------------------------------------------------


def test_bom_auto_writes_bom_only_when_msg_holds_non_ascii() -> None:
    assert format_5424(message(msg="plain")).endswith(b" - plain")
    assert format_5424(message(msg="héllo")).endswith(b" - " + BOM + "héllo".encode())


def test_bom_auto_also_keeps_a_bom_the_message_says_it_had() -> None:
    assert format_5424(message(msg="plain", bom=True)).endswith(b" - " + BOM + b"plain")


def test_bom_true_and_false_force_it() -> None:
    assert format_5424(message(msg="plain"), bom=True).endswith(b" - " + BOM + b"plain")
    assert format_5424(message(msg="héllo"), bom=False).endswith(b" - " + "héllo".encode())


def test_bom_argument_must_be_auto_true_or_false() -> None:
    with pytest.raises(ValueError, match="bom"):
        format_5424(message(), bom="yes")


def test_no_msg_and_empty_msg_write_no_msg_part() -> None:
    assert format_5424(message(msg=None)).endswith(b" ID47 -")
    assert format_5424(message(msg="")).endswith(b" ID47 -")
    assert format_5424(message(msg=None), bom=True).endswith(b" ID47 -")


def test_lone_surrogates_in_msg_become_question_marks() -> None:
    assert format_5424(message(msg="a\udcffb"), bom=False).endswith(b" - a?b")


def test_msg_keeps_newlines_and_control_characters() -> None:
    assert format_5424(message(msg="a\nb\x00c")).endswith(b" - a\nb\x00c")


# -- formatting: max_size -----------------------------------------------------------------------

SD = (SDElement("origin", (("ip", "192.0.2.1"),)),)


def test_max_size_not_reached_changes_nothing_and_reports_nothing() -> None:
    report: dict[str, int] = {}
    msg = message(structured_data=SD, msg="hello")
    assert format_5424(msg, max_size=1000, report=report) == format_5424(msg)
    assert report == {}


def test_max_size_cuts_msg_first_and_keeps_sd() -> None:
    report: dict[str, int] = {}
    msg = message(structured_data=SD, msg="x" * 500)
    full = format_5424(msg)
    out = format_5424(msg, max_size=len(full) - 100, report=report)
    assert len(out) == len(full) - 100
    assert b'[origin ip="192.0.2.1"] xxx' in out
    assert report == {"truncated": 1}


def test_max_size_never_splits_a_utf8_sequence() -> None:
    msg = message(msg="é" * 100, bom=False)
    base = len(format_5424(message(msg=None)))
    assert len(format_5424(msg, max_size=base + 2, bom=False)) == base  # SP fits, "é" does not
    for size in range(base + 3, base + 20):
        out = format_5424(msg, max_size=size, bom=False)
        assert len(out) in (size, size - 1)
        out.decode("utf-8")  # would raise on a split sequence


def test_max_size_drops_sd_when_header_and_sd_alone_exceed_it() -> None:
    report: dict[str, int] = {}
    msg = message(structured_data=(SDElement("big@1", (("v", "x" * 300),)),), msg="hello")
    head = len(format_5424(message(msg=None)))
    out = format_5424(msg, max_size=head + 20, report=report)
    assert out == format_5424(message(msg="hello"))
    assert report == {"truncated": 1, "sd_dropped": 1}


def test_max_size_leaves_msg_and_its_bom_out_when_no_byte_of_msg_fits() -> None:
    msg = message(msg="héllo")
    head = format_5424(message(msg=None))
    assert format_5424(msg, max_size=len(head) + 4) == head  # SP + BOM fit, no text byte does
    assert format_5424(msg, max_size=len(head) + 5) == head + b" " + BOM + b"h"


def test_max_size_smaller_than_the_header_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="smaller than the RFC 5424 header"):
        format_5424(message(msg="hello"), max_size=10)


def test_counts_accumulate_in_the_callers_report() -> None:
    report = {"truncated": 2}
    format_5424(message(msg="x" * 100), max_size=60, report=report)
    assert report == {"truncated": 3}


# -- parsing: modes and options -----------------------------------------------------------------

VALID = (
    b'<165>1 2003-10-11T22:14:15.003Z host app 42 ID47 [a@1 k="v"][b@1 x="\\]"] '
    + BOM
    + "héllo".encode()
)


def test_parse_returns_typed_fields_and_keeps_the_raw_bytes() -> None:
    msg = parse_5424(VALID)
    assert msg.facility is Facility.LOCAL4 and msg.severity is Severity.NOTICE
    assert msg.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, UTC)
    assert msg.structured_data == (SDElement("a@1", (("k", "v"),)), SDElement("b@1", (("x", "]"),)))
    assert msg.msg == "héllo" and msg.bom is True
    assert msg.raw == VALID


def test_parse_accepts_str_bytearray_and_memoryview_alike() -> None:
    want = parse_5424(VALID)
    assert parse_5424(VALID.decode()) == want
    assert parse_5424(bytearray(VALID)) == want  # type: ignore[arg-type]
    assert parse_5424(memoryview(VALID)) == want  # type: ignore[arg-type]


def test_error_column_counts_bytes_of_the_utf8_encoding_for_str_input() -> None:
    text = '<13>1 - - - - - [a k="é"][a]'
    with pytest.raises(ParseError) as caught:
        parse_5424(text)
    assert caught.value.column == len(text.encode())


def test_unknown_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="mode"):
        parse_5424(VALID, "loose")


def test_optional_priority_accepts_a_message_without_pri() -> None:
    msg = parse_5424(b"1 - host - - - - hi", optional_priority=True)
    assert (msg.facility, msg.severity, msg.hostname, msg.msg) == (None, None, "host", "hi")
    with pytest.raises(ParseError):
        parse_5424(b"1 - host - - - - hi")


def test_parse_error_message_names_the_field_and_the_column() -> None:
    with pytest.raises(ParseError) as caught:
        parse_5424(b"<13>1 - " + b"h" * 256 + b" - - - -")
    assert caught.value.reason == "HOSTNAME is longer than 255 characters"
    assert str(caught.value) == "HOSTNAME is longer than 255 characters (column 264)"


def test_invalid_escape_stays_as_written_rfc5424_6_3_3() -> None:
    msg = parse_5424(b'<13>1 - - - - - [a k="\\n\\t\\x\\\\n"]')
    assert msg.structured_data[0].params == (("k", "\\n\\t\\x\\n"),)


def test_empty_msg_after_the_sd_separator_is_none() -> None:
    assert parse_5424(b"<13>1 - - - - - - ").msg is None
    assert parse_5424(b"<13>1 - - - - - -").msg is None


def test_bom_only_msg_is_an_empty_msg_with_bom_rfc5424_6_4() -> None:
    msg = parse_5424(b"<13>1 - - - - - - " + BOM)
    assert (msg.msg, msg.bom) == ("", True)


def test_msg_that_is_not_utf8_is_decoded_with_replacement_and_raw_keeps_it() -> None:
    data = b"<13>1 - - - - - - caf\xe9 \xff"
    msg = parse_5424(data)
    assert msg.msg == "caf\ufffd \ufffd" and msg.raw == data and msg.bom is False


def test_compliant_msg_refuses_bom_followed_by_invalid_utf8_and_best_effort_keeps_the_prefix() -> (
    None
):
    data = b"<13>1 - - - - - - " + BOM + b"ok\xc3("
    assert parse_5424(data).msg == "ok\ufffd("
    with pytest.raises(ParseError) as caught:
        parse_5424(data, "best_effort", compliant_msg=True)
    assert caught.value.column == len(data)  # the '(' that breaks the 2-byte sequence
    partial = caught.value.partial
    assert partial is not None and partial.bom is True and partial.msg == "ok\ufffd"


def test_compliant_msg_accepts_any_bytes_without_bom() -> None:
    assert parse_5424(b"<13>1 - - - - - - caf\xe9", compliant_msg=True).msg == "caf\ufffd"


def test_param_value_that_is_not_utf8_is_a_strict_error_at_the_byte() -> None:
    data = b'<13>1 - - - - - [a k="ab\xffc"]'
    with pytest.raises(ParseError, match="UTF-8") as caught:
        parse_5424(data)
    assert caught.value.column == data.index(b"\xff") + 1
    assert parse_5424(data, "lenient").structured_data[0].params == (("k", "ab\ufffdc"),)


def test_best_effort_partial_holds_the_header_and_the_complete_sd_elements() -> None:
    data = b'<13>1 2020-01-01T00:00:00Z host app - - [a k="1"][b k=2]'
    with pytest.raises(ParseError) as caught:
        parse_5424(data, "best_effort")
    partial = caught.value.partial
    assert partial is not None
    assert (partial.hostname, partial.app_name, partial.procid) == ("host", "app", None)
    assert partial.timestamp == datetime(2020, 1, 1, tzinfo=UTC)
    assert partial.structured_data == (SDElement("a", (("k", "1"),)),)
    assert partial.msg is None


def test_strict_error_carries_no_partial() -> None:
    with pytest.raises(ParseError) as caught:
        parse_5424(b"<13>1 - host")
    assert caught.value.partial is None


def test_strict_refuses_trailing_lf_after_sd_but_keeps_lf_inside_msg() -> None:
    with pytest.raises(ParseError):
        parse_5424(b"<13>1 - - - - - -\n")
    assert parse_5424(b"<13>1 - - - - - - a\n").msg == "a\n"


def test_timezones_are_shared_per_offset() -> None:
    assert tz_for_minutes(120) is tz_for_minutes(120)
    assert tz_for_minutes(0) is UTC


def test_scan_timestamp_reports_the_byte_at_fault() -> None:
    with pytest.raises(TimestampError) as caught:
        scan_timestamp(b"2003-13-01T00:00:00Z", 0)
    assert caught.value.index == 6


# -- parsing: lenient ---------------------------------------------------------------------------


def test_lenient_trims_whitespace_around_the_message() -> None:
    msg = parse_5424(b"\n  <13>1 - h - - - - text \r\n", "lenient")
    assert (msg.hostname, msg.msg) == ("h", "text")


def test_lenient_reads_a_message_without_pri() -> None:
    msg = parse_5424(b"1 - h - - - - text", "lenient")
    assert (msg.facility, msg.severity, msg.version, msg.msg) == (None, None, 1, "text")


def test_lenient_out_of_range_pri_gives_no_facility_but_keeps_the_rest() -> None:
    msg = parse_5424(b"<999>1 - h - - - - text", "lenient")
    assert (msg.facility, msg.severity, msg.hostname, msg.msg) == (None, None, "h", "text")


def test_lenient_without_version_keeps_everything_after_pri_as_msg() -> None:
    msg = parse_5424(b"<134>Feb 18 20:53:31 haproxy[376]: I am a message", "lenient")
    assert msg.facility is Facility.LOCAL0 and msg.version is None
    assert msg.msg == "Feb 18 20:53:31 haproxy[376]: I am a message"


def test_lenient_never_invents_data_for_garbage() -> None:
    msg = parse_5424(b"garbage", "lenient")
    assert (msg.facility, msg.version, msg.hostname, msg.msg) == (None, None, None, "garbage")
    assert parse_5424(b"", "lenient") == SyslogMessage(
        facility=None, severity=None, version=None, raw=b""
    )


def test_lenient_drops_a_malformed_sd_element_and_keeps_the_others() -> None:
    msg = parse_5424(b'<13>1 - h - - - [a k="1"][bad x][c k="2"] text', "lenient")
    assert [e.id for e in msg.structured_data] == ["a", "c"]
    assert msg.msg == "text"


def test_lenient_unterminated_sd_becomes_msg_so_nothing_is_lost() -> None:
    msg = parse_5424(b'<13>1 - h - - - [a k="1"][b k="unclosed', "lenient")
    assert msg.structured_data == (SDElement("a", (("k", "1"),)),)
    assert msg.msg == '[b k="unclosed'


def test_lenient_keeps_duplicate_sd_ids_in_order_never_merged() -> None:
    msg = parse_5424(b'<13>1 - - - - - [a k="1"][a k="2"]', "lenient")
    assert msg.structured_data == (SDElement("a", (("k", "1"),)), SDElement("a", (("k", "2"),)))


def test_lenient_accepts_unescaped_bracket_inside_a_quoted_value() -> None:
    msg = parse_5424(b'<13>1 - - - - - [a k="x]y"] m', "lenient")
    assert msg.structured_data == (SDElement("a", (("k", "x]y"),)),) and msg.msg == "m"


def test_lenient_accepts_fields_longer_than_their_limits_and_extra_spaces() -> None:
    msg = parse_5424(b"<13>1 -  " + b"h" * 300 + b"   app - - - m", "lenient")
    assert msg.hostname == "h" * 300 and msg.app_name == "app" and msg.msg == "m"


def test_lenient_reads_lowercase_t_z_and_nanoseconds_truncated_to_microseconds() -> None:
    msg = parse_5424(b"<13>1 2003-10-11t22:14:15.123456789z h - - - -", "lenient")
    assert msg.timestamp == datetime(2003, 10, 11, 22, 14, 15, 123456, UTC)


def test_lenient_keeps_an_unreadable_timestamp_as_text_in_extra() -> None:
    msg = parse_5424(b"<13>1 2016-12-31T23:59:60Z h - - - - m", "lenient")
    assert msg.timestamp is None and msg.extra == {"timestamp_raw": "2016-12-31T23:59:60Z"}
    assert (msg.hostname, msg.msg) == ("h", "m")


def test_lenient_sd_that_is_neither_nil_nor_bracket_starts_msg() -> None:
    msg = parse_5424(b"<13>1 - h a p m free text", "lenient")
    assert msg.structured_data == () and msg.msg == "free text"


# -- parsing: the fast path and the scanner agree -----------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        VALID,
        b"<0>1 - - - - - -",
        b'<191>999 2018-12-31T23:59:59.999999-23:59 h a p m [x a="\\\\" b="\\"" c="\\]"] m',
        b"<13>1 1985-04-12T23:20:50.52+05:45 h a p m - " + BOM,
        b'<13>1 - - - - - [a][b k=""]',
    ],
)
def test_fast_path_and_scanner_build_the_same_message(data: bytes) -> None:
    assert StrictScanner(data, False).run(False, False) == parse_5424(data)


def test_timestamp_text_is_the_same_from_the_per_second_cache() -> None:
    zone = timezone(timedelta(hours=-3))
    first = datetime(2021, 5, 6, 7, 8, 9, 1, zone)
    again = first.replace(microsecond=999999)
    assert format_timestamp(first) == "2021-05-06T07:08:09.000001-03:00"
    assert format_timestamp(again) == "2021-05-06T07:08:09.999999-03:00"


def test_offset_with_microseconds_is_converted_to_utc_exactly() -> None:
    odd = timezone(timedelta(seconds=1, microseconds=500000))
    for micro in (0, 600000):
        dt = datetime(2021, 5, 6, 7, 8, 9, micro, odd)
        want = dt.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
        assert format_timestamp(dt) == want


def test_python_310_fromisoformat_fallback_reads_z_and_short_fractions() -> None:
    from syslogkit.codec._rfc3339 import _fromisoformat_compat

    assert _fromisoformat_compat("1985-04-12T23:20:50.52Z") == datetime(
        1985, 4, 12, 23, 20, 50, 520000, UTC
    )
    assert _fromisoformat_compat("2003-08-24T05:14:15.000003-07:00") == datetime(
        2003, 8, 24, 5, 14, 15, 3, timezone(timedelta(hours=-7))
    )
    assert _fromisoformat_compat("2003-08-24T05:14:15+05:45").utcoffset() == timedelta(
        hours=5, minutes=45
    )
    assert _fromisoformat_compat("2003-08-24T05:14:15.5") == datetime(
        2003, 8, 24, 5, 14, 15, 500000
    )
