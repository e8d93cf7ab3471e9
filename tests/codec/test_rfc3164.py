"""RFC 3164: format_3164 output, parse_3164 variants, year rollover, modes, and properties."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syslogkit import Facility, ParseError, SDElement, Severity, SyslogMessage
from syslogkit.codec.rfc3164 import (
    TAG_MAX,
    default_reference,
    format_3164,
    parse_3164,
    sanitize_hostname,
    sanitize_tag,
)
from syslogkit.codec.rfc3164 import parsing as rfc3164_parsing

UTC = timezone.utc
PLUS2 = timezone(timedelta(hours=2))
REF = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


def message(**fields: object) -> SyslogMessage:
    base: dict[str, object] = {
        "facility": Facility.LOCAL4,
        "severity": Severity.NOTICE,
        "version": None,
        "timestamp": datetime(2024, 8, 24, 5, 34, 0),
        "hostname": "mymachine",
        "app_name": "myproc",
        "procid": "10",
        "msg": "hello",
    }
    base.update(fields)
    return SyslogMessage(**base)  # type: ignore[arg-type]


# --- format_3164 ---------------------------------------------------------------------------


def test_format_writes_pri_bsd_timestamp_hostname_tag_pid_msg() -> None:
    assert format_3164(message()) == b"<165>Aug 24 05:34:00 mymachine myproc[10]: hello"


def test_format_pads_a_single_digit_day_with_a_space() -> None:
    out = format_3164(message(timestamp=datetime(2024, 2, 5, 17, 32, 18)))
    assert out.startswith(b"<165>Feb  5 17:32:18 ")


def test_format_writes_two_digit_days_without_padding() -> None:
    out = format_3164(message(timestamp=datetime(2024, 12, 31, 23, 59, 59, 999999)))
    assert out.startswith(b"<165>Dec 31 23:59:59 mymachine")


def test_format_renders_the_timestamp_in_its_own_zone_not_utc() -> None:
    out = format_3164(message(timestamp=datetime(2024, 1, 1, 0, 30, tzinfo=PLUS2)))
    assert out.startswith(b"<165>Jan  1 00:30:00 ")


def test_format_month_names_do_not_depend_on_the_locale() -> None:
    months = [format_3164(message(timestamp=datetime(2024, m, 10)))[5:8] for m in range(1, 13)]
    assert b" ".join(months) == b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"


def test_format_omit_hostname_gives_the_glibc_dev_log_form() -> None:
    out = format_3164(message(), omit_hostname=True)
    assert out == b"<165>Aug 24 05:34:00 myproc[10]: hello"
    back = parse_3164(out, reference=REF)
    assert (back.hostname, back.app_name, back.procid, back.msg) == (None, "myproc", "10", "hello")


def test_format_keeps_utf8_msg() -> None:
    out = format_3164(message(msg="größenordnungsmäßig ✓"))
    assert out.endswith("myproc[10]: größenordnungsmäßig ✓".encode())


def test_format_without_procid_writes_tag_colon() -> None:
    assert format_3164(message(procid=None)).endswith(b" mymachine myproc: hello")


def test_format_without_app_name_writes_no_tag_and_no_pid() -> None:
    assert format_3164(message(app_name=None)) == b"<165>Aug 24 05:34:00 mymachine hello"


def test_format_msg_none_ends_after_the_tag_colon() -> None:
    assert format_3164(message(msg=None)) == b"<165>Aug 24 05:34:00 mymachine myproc[10]:"


def test_format_cuts_tag_to_32_characters_rfc3164_4_1_3() -> None:
    out = format_3164(message(app_name="a" * 40, procid=None))
    assert b" " + b"a" * TAG_MAX + b": hello" in out
    assert TAG_MAX == 32


def test_format_sanitises_tag_to_ascii_visible_without_brackets_colons_spaces() -> None:
    assert sanitize_tag("my app[1]: é\tx") == "myapp1x"
    assert format_3164(message(app_name="my app:", procid=None)).endswith(b" myapp: hello")


def test_format_removes_spaces_from_hostname_and_keeps_dots() -> None:
    assert sanitize_hostname("my host.example.org") == "myhost.example.org"
    assert b" myhost.example.org myproc" in format_3164(message(hostname="my host.example.org"))


def test_format_hostname_never_looks_like_a_tag() -> None:
    assert sanitize_hostname("[::1]") == "::1"
    assert sanitize_hostname("host:") == "host"
    back = parse_3164(format_3164(message(hostname="fe80::1")), reference=REF)
    assert (back.hostname, back.app_name) == ("fe80::1", "myproc")


def test_format_empty_hostname_is_left_out() -> None:
    assert format_3164(message(hostname=None)) == b"<165>Aug 24 05:34:00 myproc[10]: hello"
    assert format_3164(message(hostname=" ")) == b"<165>Aug 24 05:34:00 myproc[10]: hello"


def test_format_without_timestamp_leaves_out_timestamp_and_hostname_rfc3164_4_3_2() -> None:
    assert format_3164(message(timestamp=None)) == b"<165>myproc[10]: hello"


def test_format_writes_missing_facility_or_severity_as_user_notice_rfc3164_4_3_3() -> None:
    assert format_3164(message(facility=None, severity=None)).startswith(b"<13>")
    assert format_3164(message(facility=Facility.KERN, severity=None)).startswith(b"<5>")


def test_format_leaves_structured_data_out() -> None:
    sd = (SDElement("origin", (("software", "x"),)),)
    assert format_3164(message(structured_data=sd)) == format_3164(message())


def test_format_max_size_none_means_no_limit() -> None:
    long = "x" * 100_000
    assert format_3164(message(msg=long), max_size=None).endswith(long.encode())


@pytest.mark.parametrize("max_size", range(1, 80))
def test_format_max_size_cuts_msg_without_splitting_utf8(max_size: int) -> None:
    full = format_3164(message(msg="aé€😀" * 10))
    out = format_3164(message(msg="aé€😀" * 10), max_size=max_size)
    assert len(out) <= max_size
    assert full.startswith(out)
    assert len(out) > max_size - 4  # a cut loses at most one partial character
    out.decode("utf-8")  # never a split sequence


def test_format_max_size_counts_truncation_in_report() -> None:
    report: dict[str, int] = {}
    format_3164(message(msg="x" * 2000), max_size=1024, report=report)
    format_3164(message(msg="short"), max_size=1024, report=report)
    assert report == {"truncated": 1}
    assert len(format_3164(message(msg="x" * 2000), max_size=1024)) == 1024


def test_format_max_size_below_one_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="max_size"):
        format_3164(message(), max_size=0)


# --- year and zone of a BSD timestamp ------------------------------------------------------


def test_december_message_received_in_january_belongs_to_the_previous_year() -> None:
    ref = datetime(2025, 1, 1, 0, 5, tzinfo=UTC)
    assert parse_3164("<13>Dec 31 23:59:58 h t: m", reference=ref).timestamp == datetime(
        2024, 12, 31, 23, 59, 58, tzinfo=UTC
    )


def test_january_message_with_a_december_reference_belongs_to_the_next_year() -> None:
    ref = datetime(2024, 12, 31, 23, 59, tzinfo=UTC)
    assert parse_3164("<13>Jan  1 00:00:03 h t: m", reference=ref).timestamp == datetime(
        2025, 1, 1, 0, 0, 3, tzinfo=UTC
    )


@pytest.mark.parametrize("ref_month", range(1, 13))
def test_other_months_take_the_reference_year(ref_month: int) -> None:
    ref = datetime(2023, ref_month, 10, tzinfo=UTC)
    ts = parse_3164("<13>Jun 10 10:00:00 h t: m", reference=ref).timestamp
    assert ts is not None and ts.year == 2023


def test_bsd_timestamp_takes_the_zone_of_the_reference() -> None:
    ref = datetime(2024, 3, 1, tzinfo=PLUS2)
    ts = parse_3164("<13>Mar  1 10:00:00 h t: m", reference=ref).timestamp
    assert ts == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    assert ts is not None and ts.utcoffset() == timedelta(hours=2)


def test_feb_29_is_valid_in_a_leap_reference_year() -> None:
    ts = parse_3164("<13>Feb 29 10:00:00 h t: m", "strict", reference=REF).timestamp
    assert ts == datetime(2024, 2, 29, 10, tzinfo=UTC)


def test_feb_29_in_a_non_leap_year_is_a_strict_error_at_the_timestamp_column() -> None:
    with pytest.raises(ParseError) as info:
        parse_3164("<13>Feb 29 10:00:00 h t: m", "strict", reference=REF.replace(year=2023))
    assert info.value.column == 5


def test_feb_29_in_a_non_leap_year_lenient_keeps_the_rest_and_no_timestamp() -> None:
    msg = parse_3164("<13>Feb 29 10:00:00 h t: m", reference=REF.replace(year=2023))
    assert (msg.timestamp, msg.hostname, msg.app_name, msg.msg) == (None, "h", "t", "m")


def test_impossible_time_is_a_strict_error() -> None:
    with pytest.raises(ParseError):
        parse_3164("<13>Mar  1 24:00:00 h t: m", "strict", reference=REF)
    assert parse_3164("<13>Mar  1 24:00:00 h t: m", reference=REF).timestamp is None


def test_explicit_reference_bypasses_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_clock() -> datetime:
        raise AssertionError("default_reference() read the clock despite reference=")

    monkeypatch.setattr(rfc3164_parsing, "default_reference", no_clock)
    parse_3164("<13>Mar  1 10:00:00 h t: m", reference=REF)
    parse_3164("<13>2024-03-01T10:00:00 h t: m", reference=REF)


def test_default_reference_is_now_in_the_local_zone_and_used_without_reference() -> None:
    before = datetime.now().astimezone()
    ref = default_reference()
    assert ref.utcoffset() is not None and abs(ref - before) < timedelta(seconds=5)
    ts = parse_3164(f"<13>{ref:%b} {ref.day:2d} 10:00:00 h t: m").timestamp
    assert ts is not None and ts.year == ref.year and ts.utcoffset() == ref.utcoffset()


def test_naive_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_3164("<13>Mar  1 10:00:00 h t: m", reference=datetime(2024, 1, 1))


def test_cisco_timestamp_with_year_uses_that_year() -> None:
    msg = parse_3164("<189>12: Mar  1 2021 18:46:11.123: %SYS-5-X: m", cisco=True, reference=REF)
    assert msg.timestamp == datetime(2021, 3, 1, 18, 46, 11, 123000, tzinfo=UTC)


# --- RFC 3339 timestamps in a BSD header ---------------------------------------------------


def test_rfc3339_timestamp_is_read_as_an_aware_datetime() -> None:
    msg = parse_3164("<28>2019-12-02T16:49:23.5+02:00 host app[1]: Test", "strict")
    assert msg.timestamp == datetime(2019, 12, 2, 14, 49, 23, 500000, tzinfo=UTC)
    assert (msg.hostname, msg.app_name, msg.procid, msg.msg) == ("host", "app", "1", "Test")


def test_rfc3339_without_offset_takes_the_reference_zone_in_lenient_mode_only() -> None:
    text = "<28>2019-12-02T16:49:23 host app: Test"
    assert parse_3164(text, reference=REF).timestamp == datetime(
        2019, 12, 2, 16, 49, 23, tzinfo=UTC
    )
    with pytest.raises(ParseError, match="offset"):
        parse_3164(text, "strict", reference=REF)


def test_impossible_rfc3339_date_is_a_strict_error_and_lenient_none() -> None:
    text = "<28>2019-02-30T16:49:23Z host app: Test"
    with pytest.raises(ParseError):
        parse_3164(text, "strict")
    msg = parse_3164(text)
    assert (msg.timestamp, msg.hostname, msg.app_name) == (None, "host", "app")


def test_rfc3339_false_leaves_an_rfc3339_header_in_msg() -> None:
    text = "<28>2019-12-02T16:49:23+02:00 host app: Test"
    msg = parse_3164(text, rfc3339=False)
    assert (msg.timestamp, msg.hostname, msg.msg) == (None, None, text[4:])


# --- PRI and modes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column"),
    [("<192>Mar  1 10:00:00 h t: m", 2), ("<00>Mar  1 10:00:00 h t: m", 2),
     ("<13 Mar  1 10:00:00 h t: m", 4), ("<>Mar  1 10:00:00 h t: m", 2),
     ("<1234>Mar  1 10:00:00 h t: m", 5), ("<", 2)],
)  # fmt: skip
def test_invalid_pri_is_a_strict_error_with_its_column(text: str, column: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_3164(text, "strict", reference=REF)
    assert info.value.column == column


def test_unidentifiable_pri_makes_the_whole_packet_msg_in_lenient_mode_rfc3164_4_3_3() -> None:
    msg = parse_3164("<00>Mar  1 10:00:00 h t: m", reference=REF)
    assert (msg.facility, msg.severity, msg.timestamp, msg.msg) == (
        None, None, None, "<00>Mar  1 10:00:00 h t: m",
    )  # fmt: skip


def test_missing_pri_is_a_strict_error_only_without_optional_priority() -> None:
    text = "Mar  1 10:00:00 h t: m"
    with pytest.raises(ParseError) as info:
        parse_3164(text, "strict", optional_priority=False, reference=REF)
    assert info.value.column == 1
    msg = parse_3164(text, "strict", reference=REF)
    assert (msg.facility, msg.severity, msg.app_name) == (None, None, "t")
    assert parse_3164(text, optional_priority=False, reference=REF).facility is None


def test_missing_timestamp_is_a_strict_error_at_its_column() -> None:
    with pytest.raises(ParseError) as info:
        parse_3164("<13> hello", "strict")
    assert info.value.column == 6


def test_best_effort_error_carries_what_parsed_before_the_fault() -> None:
    with pytest.raises(ParseError) as info:
        parse_3164("<13>Feb 29 10:00:00 h t: m", "best_effort", reference=REF.replace(year=2023))
    partial = info.value.partial
    assert partial is not None and (partial.facility, partial.severity) == (1, 5)
    with pytest.raises(ParseError) as strict_info:
        parse_3164("<13>Feb 29 10:00:00 h t: m", "strict", reference=REF.replace(year=2023))
    assert strict_info.value.partial is None


def test_unknown_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="mode"):
        parse_3164("<13>x", "loose")


def test_version_and_msgid_are_none_for_rfc3164() -> None:
    msg = parse_3164("<13>Mar  1 10:00:00 h t: m", reference=REF)
    assert (msg.version, msg.msgid, msg.structured_data) == (None, None, ())


# --- HOSTNAME, TAG, MSG --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rest", "hostname", "app_name", "procid", "msg"),
    [
        ("host su: hi", "host", "su", None, "hi"),
        ("host su[1]: hi", "host", "su", "1", "hi"),
        ("host su[1] hi", "host", "su", "1", "hi"),  # '[' ends a TAG (§5.3)
        ("host su[1]", "host", "su", "1", ""),
        ("host su:hi", "host", "su", None, "hi"),
        ("host Use the BFG!", "host", None, None, "Use the BFG!"),  # §5.4 Example 2
        ("su[1]: hi", None, "su", "1", "hi"),
        ("su[1]:hi", None, "su", "1", "hi"),
        ("su: hi", None, "su", None, "hi"),
        (": hi", None, None, None, "hi"),
        ("fe80::1 su: hi", "fe80::1", "su", None, "hi"),
        ("host", "host", None, None, None),
        ("host ", "host", None, None, None),
        ("", None, None, None, None),
        ("host su:", "host", "su", None, ""),
        ("host  su:   spaced", "host", "su", None, "spaced"),
        ("host su[1]x y", "host", None, None, "su[1]x y"),
        ("host [1]: y", "host", None, None, "[1]: y"),
    ],
)
def test_hostname_tag_and_msg_variants(
    rest: str, hostname: str | None, app_name: str | None, procid: str | None, msg: str | None
) -> None:
    got = parse_3164(f"<13>Mar  1 10:00:00 {rest}", reference=REF)
    assert (got.hostname, got.app_name, got.procid, got.msg) == (hostname, app_name, procid, msg)


def test_without_timestamp_a_first_word_that_ends_like_a_tag_is_the_tag() -> None:
    msg = parse_3164("<14>myapp: started")  # stdlib SysLogHandler with ident="myapp: "
    assert (msg.timestamp, msg.hostname, msg.app_name, msg.msg) == (None, None, "myapp", "started")
    msg = parse_3164("<14>started the app")
    assert (msg.hostname, msg.app_name, msg.msg) == (None, None, "started the app")


def test_gobbledegook_becomes_the_whole_msg_with_nothing_invented() -> None:
    msg = parse_3164("  complete and utter gobbledegook")
    assert msg == SyslogMessage(
        facility=None, severity=None, version=None, msg="  complete and utter gobbledegook"
    )


def test_bom_at_msg_start_is_flagged_and_removed() -> None:
    msg = parse_3164("<13>Mar  1 10:00:00 h t: \ufeffhallo", reference=REF)
    assert (msg.bom, msg.msg) == (True, "hallo")


def test_invalid_utf8_is_replaced_in_msg_and_kept_in_raw() -> None:
    data = b"<13>Mar  1 10:00:00 h\xff t: caf\xe9 \xff"
    msg = parse_3164(data, reference=REF)
    assert (msg.hostname, msg.msg) == ("h\ufffd", "caf\ufffd \ufffd")
    assert msg.raw == data


def test_str_input_parses_like_its_utf8_bytes() -> None:
    text = "<13>Mar  1 10:00:00 hôst tâg[1]: größe"
    assert parse_3164(text, reference=REF) == parse_3164(text.encode(), reference=REF)
    assert parse_3164(text, reference=REF).raw == text.encode()


# --- rsyslog structured data after the TAG -------------------------------------------------


def test_sd_after_tag_with_registered_or_private_ids_is_structured_data() -> None:
    msg = parse_3164(
        '<13>Mar  1 10:00:00 h t: [origin ip="1.2.3.4"][x@32473 a="1" b="q\\"\\]\\\\\\n"] go',
        reference=REF,
    )
    assert msg.structured_data == (
        SDElement("origin", (("ip", "1.2.3.4"),)),
        SDElement("x@32473", (("a", "1"), ("b", 'q"]\\\\n'))),
    )
    assert msg.msg == "go"


@pytest.mark.parametrize(
    "content",
    [
        "[UFW BLOCK] IN=eth0",  # not an SD-ELEMENT
        "[WAN_LOCAL-default-D] IN=eth0",  # SD-ID neither registered nor name@number
        "[origin]IN=eth0",  # no SP after the SD
        '[origin a="unterminated] x',
        "[origin a=b] x",
        "[] x",
    ],
)
def test_bracketed_text_that_is_not_valid_sd_stays_in_msg(content: str) -> None:
    msg = parse_3164(f"<13>Mar  1 10:00:00 h kernel: {content}", reference=REF)
    assert (msg.structured_data, msg.msg) == ((), content)


def test_sd_is_only_taken_after_a_tag() -> None:
    msg = parse_3164('<13>Mar  1 10:00:00 h [origin ip="1"] x', reference=REF)
    assert (msg.structured_data, msg.msg) == ((), '[origin ip="1"] x')


def test_sd_alone_after_the_tag_leaves_an_empty_msg() -> None:
    msg = parse_3164('<13>Mar  1 10:00:00 h t: [origin ip="1"]', reference=REF)
    assert (len(msg.structured_data), msg.msg) == (1, "")


# --- Cisco IOS -----------------------------------------------------------------------------


def test_cisco_off_reads_a_counter_as_a_tag() -> None:
    msg = parse_3164("<189>643: *Jan  8 19:46:03.295: %LINK-3-UPDOWN: x", reference=REF)
    assert (msg.timestamp, msg.app_name, msg.extra) == (None, "643", None)


def test_cisco_dot_mark_means_ntp_unsynced_too() -> None:
    msg = parse_3164("<189>7: .Jan  8 19:46:03: %LINK-3-UPDOWN: x", cisco=True, reference=REF)
    assert msg.extra == {"message_counter": 7, "ntp_unsynced": True}
    assert (msg.app_name, msg.msg) == ("%LINK-3-UPDOWN", "x")


def test_cisco_all_parts_together() -> None:
    msg = parse_3164(
        "<189>12: 000034: rtr1: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: done",
        "strict", cisco="all", reference=REF,
    )  # fmt: skip
    assert msg.extra == {"message_counter": 12, "sequence": 34, "ntp_unsynced": True}
    assert (msg.hostname, msg.app_name, msg.msg) == ("rtr1", "%SYS-5-CONFIG_I", "done")


def test_cisco_no_counter_reads_the_first_number_as_the_sequence() -> None:
    msg = parse_3164(
        "<189>000104: Mar 12 07:12:10: %SYS-5-CONFIG_I: x", cisco="no-counter", reference=REF
    )
    assert msg.extra == {"sequence": 104}


def test_cisco_excluded_part_is_a_strict_error_and_taken_in_lenient_mode() -> None:
    text = "<189>5: rtr1: Mar 12 07:12:10: %SYS-5-CONFIG_I: x"
    with pytest.raises(ParseError) as info:
        parse_3164(text, "strict", cisco="no-hostname", reference=REF)
    assert info.value.column == 9
    assert parse_3164(text, cisco="no-hostname", reference=REF).hostname == "rtr1"


def test_cisco_message_without_timestamp_still_finds_counter_and_tag() -> None:
    msg = parse_3164("<189>12: %SYS-5-CONFIG_I: x", cisco=True)
    assert (msg.timestamp, msg.extra, msg.app_name, msg.msg) == (
        None, {"message_counter": 12}, "%SYS-5-CONFIG_I", "x",
    )  # fmt: skip


def test_cisco_numbers_beyond_int_digit_limits_never_raise_in_lenient_mode() -> None:
    huge = b"9" * 5000
    for data in (b"<189>" + huge + b": Mar  1 10:00:00: %X: y", b"<189>1: " + huge + b": %X: y"):
        assert parse_3164(data, cisco=True, reference=REF).raw == data


@pytest.mark.parametrize("bad", ["no-seq", "sequence", "everything", "no-all"])
def test_cisco_unknown_option_word_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="cisco"):
        parse_3164("<189>1: x", cisco=bad)


# --- properties ----------------------------------------------------------------------------

FRAGMENTS = [
    b"<13>", b"<189>", b"<", b">", b"<00>", b"Feb", b"OCT", b" ", b"  ", b"5", b"29", b"2024",
    b"17:32:18", b".295", b":", b": ", b"[", b"]", b"host", b"tag", b"123", b"*", b".", b"=",
    b'"', b"\\", b"2019-12-02T16:49:23", b"+02:00", b"Z", b"origin", b"x@32473", b'a="b"',
    b"\xff", b"\xef\xbb\xbf", b"\xc3", b"\x00", b"\n", b"%SYS-5-X",
]  # fmt: skip
syslogish = st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(b"".join)
any_bytes = st.one_of(st.binary(max_size=300), syslogish)
cisco_options = st.sampled_from([False, True, "no-sequence|no-hostname", "no-counter"])
references = st.one_of(st.none(), st.datetimes(timezones=st.just(UTC), min_value=datetime(2, 1, 1)))


@settings(max_examples=400)
@given(data=any_bytes, cisco=cisco_options, reference=references, rfc3339=st.booleans())
def test_lenient_parse_3164_never_raises_on_any_bytes(
    data: bytes, cisco: bool | str, reference: datetime | None, rfc3339: bool
) -> None:
    msg = parse_3164(data, cisco=cisco, reference=reference, rfc3339=rfc3339)
    assert msg.raw == data
    assert msg.version is None


@settings(max_examples=300)
@given(data=any_bytes, cisco=cisco_options, mode=st.sampled_from(["strict", "best_effort"]))
def test_strict_parse_3164_raises_nothing_but_parse_error(
    data: bytes, cisco: bool | str, mode: str
) -> None:
    try:
        parse_3164(data, mode, cisco=cisco, reference=REF)
    except ParseError as exc:
        assert 1 <= exc.column <= len(data) + 1
        assert (exc.partial is not None) == (mode == "best_effort")


zones = st.sampled_from([UTC, PLUS2, timezone(timedelta(hours=-5, minutes=-30))])
visible_ascii = st.characters(min_codepoint=33, max_codepoint=126)


@settings(max_examples=300)
@given(
    facility=st.sampled_from(Facility),
    severity=st.sampled_from(Severity),
    timestamp=st.datetimes(
        min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=zones
    ),
    hostname=st.one_of(st.none(), st.text(max_size=40)),
    app_name=st.text(alphabet=visible_ascii, max_size=40).filter(lambda s: sanitize_tag(s) != ""),
    procid=st.one_of(st.none(), st.text(alphabet=visible_ascii, max_size=12)),
    text=st.text(max_size=80).filter(lambda s: not s.startswith((" ", "[", "\ufeff"))),
    omit_hostname=st.booleans(),
)
def test_format_then_parse_gives_the_fields_back(
    facility: Facility,
    severity: Severity,
    timestamp: datetime,
    hostname: str | None,
    app_name: str,
    procid: str | None,
    text: str,
    omit_hostname: bool,
) -> None:
    original = SyslogMessage(
        facility=facility, severity=severity, version=None, timestamp=timestamp,
        hostname=hostname, app_name=app_name, procid=procid, msg=text,
    )  # fmt: skip
    back = parse_3164(format_3164(original, omit_hostname), "strict", reference=timestamp)
    sent_host = None if omit_hostname else sanitize_hostname(hostname) or None
    sent_pid = "".join(c for c in procid or "" if c not in "[]") or None
    assert (back.facility, back.severity) == (facility, severity)
    assert (back.hostname, back.app_name, back.procid) == (
        sent_host,
        sanitize_tag(app_name),
        sent_pid,
    )
    assert back.msg == text
    assert back.timestamp == timestamp.replace(microsecond=0)
    assert back.timestamp is not None and back.timestamp.utcoffset() == timestamp.utcoffset()


wellformed = st.builds(
    lambda pri, mon, day, hms, host, tag, pid, sep, rest: (
        f"<{pri}>{mon} {day} {hms} {host} {tag}{pid}{sep}{rest}".encode()
    ),
    pri=st.sampled_from(["0", "13", "191", "192", "013", "999"]),
    mon=st.sampled_from(["Jan", "Feb", "Dec", "OCT", "Foo"]),
    day=st.sampled_from([" 5", "05", "29", "31", "00", "5"]),
    hms=st.sampled_from(["00:00:00", "23:59:59", "24:00:00", "12:60:00"]),
    host=st.text(alphabet="ab.:[]-1é", min_size=1, max_size=6),
    tag=st.text(alphabet="ab:[]%_1", min_size=1, max_size=6),
    pid=st.sampled_from(["", "[1]", "[]", "[2:0]", "[a b]"]),
    sep=st.sampled_from([": ", ":", " ", ":  ", ": [", ": \ufeff", ""]),
    rest=st.text(max_size=20),
)


@settings(max_examples=500)
@given(data=st.one_of(wellformed, syslogish), reference=references)
def test_fast_path_reads_exactly_what_the_general_parser_reads(
    data: bytes, reference: datetime | None
) -> None:
    ref = reference or REF
    fast = rfc3164_parsing._fast(data, ref)
    if fast is None:
        return
    for mode in ("lenient", "strict"):
        assert rfc3164_parsing._parse(data, mode, ref, False, True, True) == fast
