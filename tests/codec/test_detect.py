"""parse(): RFC 5424 vs RFC 3164 detection, option routing, modes, and the lenient guarantee."""

from __future__ import annotations

import importlib
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syslogkit import ParseError, SyslogMessage
from syslogkit.codec.detect import is_rfc5424, parse
from syslogkit.codec.rfc3164 import parse_3164

# `syslogkit.codec.detect` the attribute is the function; the module is reached through importlib.
parse_module = importlib.import_module("syslogkit.codec.detect")

REF = datetime(2024, 6, 15, 12, 0, tzinfo=timezone.utc)

EXAMPLE_5424 = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<34>1 2003-10-11T22:14:15.003Z h a - - - m", True),
        (b"<34>1 - - - - - -", True),
        (b"<0>12 - - - - - -", True),
        (b"<191>999 - - - - - -", True),
        (b"<34>1000 - - - - - -", False),  # VERSION has at most 3 digits
        (b"<34>0 - - - - - -", False),  # NONZERO-DIGIT
        (b"<34>1- - - - - -", False),  # no SP after VERSION
        (b"<34>1", False),
        (b"<34>Oct 11 22:14:15 mymachine su: m", False),
        (b"<189>643: *Jan  8 19:46:03.295: %LINK-3-UPDOWN: x", False),  # Cisco counter
        (b"<34> 1 - - - - - -", False),
        (b"<1234>1 - - -", False),
        (b"1 - - - - - -", False),  # no PRI and PRI not optional
        (b"", False),
    ],
)
def test_is_rfc5424_is_pri_then_version_then_space(data: bytes, expected: bool) -> None:
    assert is_rfc5424(data) is expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"1 - - - - - -", True),
        (b"1 2003-10-11T22:14:15.003Z h a - - - m", True),
        (b"12 bottles of beer", False),
        (b"1 2 3", False),
        (b"Oct 11 22:14:15 mymachine su: m", False),
    ],
)
def test_is_rfc5424_without_pri_needs_optional_priority_and_a_header_shape(
    data: bytes, expected: bool
) -> None:
    assert is_rfc5424(data, optional_priority=True) is expected


def test_rfc3164_input_goes_to_parse_3164_with_its_options() -> None:
    data = b"<189>643: *Jan  8 19:46:03.295: %LINEPROTO-5-UPDOWN: Line protocol up"
    got = parse(data, cisco=True, reference=REF)
    assert got == parse_3164(data, "strict", cisco=True, reference=REF)
    assert got.extra == {"message_counter": 643, "ntp_unsynced": True}
    assert got.version is None


def test_str_and_bytes_parse_alike() -> None:
    text = "<13>Feb  5 17:32:18 hôst app[1]: größe"
    assert parse(text, reference=REF) == parse(text.encode(), reference=REF)
    assert parse(text, reference=REF).raw == text.encode()


def test_default_mode_is_strict() -> None:
    with pytest.raises(ParseError):
        parse(b"<13>no timestamp here")
    assert parse(b"<13>no timestamp here", "lenient").msg == "no timestamp here"


def test_lenient_parse_of_gobbledegook_returns_it_as_msg() -> None:
    got = parse("complete and utter gobbledegook", mode="lenient")
    assert (got.facility, got.version, got.msg) == (None, None, "complete and utter gobbledegook")


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cisko"):
        parse(b"<13>Feb  5 17:32:18 h a: m", cisko=True)


def test_unknown_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="mode"):
        parse(b"<13>Feb  5 17:32:18 h a: m", mode="relaxed")


class Recorder:
    """A stand-in parse_5424 that records its calls (or raises)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[bytes, str, dict[str, Any]]] = []
        self.error = error

    def __call__(self, data: bytes, mode: str = "strict", **kw: Any) -> SyslogMessage:
        self.calls.append((data, mode, kw))
        if self.error is not None:
            raise self.error
        return SyslogMessage(msg="from 5424")


def test_5424_input_goes_to_parse_5424_with_only_its_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = Recorder()
    monkeypatch.setattr(parse_module, "_parse_5424", fake)
    got = parse(
        EXAMPLE_5424.decode(), "best_effort", cisco=True, reference=REF, compliant_msg=True,
        optional_priority=False,
    )  # fmt: skip
    assert got.msg == "from 5424"
    assert fake.calls == [
        (EXAMPLE_5424, "best_effort", {"compliant_msg": True, "optional_priority": False})
    ]
    parse(EXAMPLE_5424)
    assert fake.calls[-1] == (EXAMPLE_5424, "strict", {})


def test_strict_5424_error_propagates_without_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_module, "_parse_5424", Recorder(ParseError("bad", 7)))
    with pytest.raises(ParseError) as info:
        parse(EXAMPLE_5424)
    assert info.value.column == 7


def test_lenient_falls_back_to_3164_when_5424_lenient_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parse_module, "_parse_5424", Recorder(RuntimeError("boom")))
    got = parse(b"<34>1 broken", "lenient")
    assert got == parse_3164(b"<34>1 broken", "lenient")
    assert (got.facility, got.severity, got.version, got.msg) == (4, 2, None, "1 broken")
    got = parse(b"<34>1 broken", "lenient", reference=REF)
    assert got.msg == "1 broken"


def test_5424_message_is_parsed_as_rfc5424() -> None:
    got = parse(EXAMPLE_5424)
    assert (got.facility, got.severity, got.version) == (4, 2, 1)
    assert got.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=timezone.utc)
    assert (got.hostname, got.app_name, got.procid, got.msgid) == (
        "mymachine.example.com", "su", None, "ID47",
    )  # fmt: skip
    assert got.msg == "'su root' failed"


def test_5424_options_do_not_disturb_it_and_3164_options_are_ignored() -> None:
    assert parse(EXAMPLE_5424, cisco=True, reference=REF, rfc3339=False) == parse(EXAMPLE_5424)


def test_5424_str_input_and_lenient_mode() -> None:
    assert parse(EXAMPLE_5424.decode(), "lenient").version == 1


def test_5424_without_pri_with_optional_priority() -> None:
    got = parse(b"1 2003-10-11T22:14:15.003Z h a - - - m", optional_priority=True)
    assert (got.facility, got.version, got.hostname, got.msg) == (None, 1, "h", "m")


def test_5424_strict_error_reports_a_column() -> None:
    with pytest.raises(ParseError) as info:
        parse(b"<34>1 2003-10-11T22:14:15.003Z")
    assert info.value.column >= 1


FRAGMENTS = [
    b"<34>", b"<13>", b"1 ", b"12 ", b"-", b" ", b"2003-10-11T22:14:15.003Z", b"Feb  5 17:32:18",
    b"[", b"]", b"x@32473", b'a="b"', b"\\", b'"', b"=", b"host", b"app:", b"\xef\xbb\xbf",
    b"\xff", b"\n", b"643: ", b"*",
]  # fmt: skip
any_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(FRAGMENTS), max_size=20).map(b"".join),
    st.binary(max_size=100).map(lambda b: b"<34>1 " + b),
)


@settings(max_examples=400)
@given(data=any_bytes, optional_priority=st.booleans(), cisco=st.booleans())
def test_lenient_parse_never_raises_on_any_bytes(
    data: bytes, optional_priority: bool, cisco: bool
) -> None:
    got = parse(data, "lenient", optional_priority=optional_priority, cisco=cisco, reference=REF)
    assert isinstance(got, SyslogMessage)
    assert parse(data, "lenient").raw == data
