"""The message model: facility and severity names, pre-shifted values, equality, SD input."""

from __future__ import annotations

import syslog

import pytest

from syslogkit import Facility, SDElement, Severity, SyslogMessage
from syslogkit.codec.message import coerce_sd, facility_of, severity_of


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("kern", 0), ("user", 1), ("mail", 2), ("daemon", 3), ("auth", 4), ("syslog", 5),
        ("lpr", 6), ("news", 7), ("uucp", 8), ("cron", 9), ("authpriv", 10), ("ftp", 11),
        ("ntp", 12), ("audit", 13), ("alert", 14), ("clock", 15), ("local0", 16),
        ("local7", 23), ("security", 4), ("LOCAL3", 19),
    ],
)  # fmt: skip
def test_facility_accepts_logger_glibc_and_rsyslog_names(name: str, expected: int) -> None:
    assert Facility.coerce(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("emerg", 0), ("panic", 0), ("alert", 1), ("crit", 2), ("err", 3), ("error", 3),
        ("warning", 4), ("warn", 4), ("notice", 5), ("info", 6), ("debug", 7),
    ],
)  # fmt: skip
def test_severity_accepts_logger_names_and_deprecated_aliases(name: str, expected: int) -> None:
    assert Severity.coerce(name) == expected


def test_facility_numbers_match_the_stdlib_syslog_module_after_unshifting() -> None:
    for name in ("KERN", "USER", "MAIL", "DAEMON", "AUTH", "SYSLOG", "LPR", "NEWS", "UUCP"):
        assert Facility[name] == getattr(syslog, f"LOG_{name}") >> 3
    assert Facility.LOCAL0 == syslog.LOG_LOCAL0 >> 3


def test_pre_shifted_facility_is_refused_with_a_hint_not_masked() -> None:
    with pytest.raises(ValueError, match=r"pre-shifted.*pass 16"):
        Facility.coerce(syslog.LOG_LOCAL0)
    with pytest.raises(ValueError, match="pre-shifted"):
        Facility(syslog.LOG_DAEMON)


@pytest.mark.parametrize("bad", [-1, 24, "local8", "", True])
def test_invalid_facility_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        Facility.coerce(bad)  # type: ignore[arg-type]


def test_severity_out_of_range_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Severity.coerce(8)
    with pytest.raises(ValueError, match="unknown syslog severity"):
        Severity.coerce("loud")


def test_pri_splits_into_facility_and_severity() -> None:
    assert facility_of(165) is Facility.LOCAL4
    assert severity_of(165) is Severity.NOTICE
    assert SyslogMessage(facility=Facility.LOCAL4, severity=Severity.NOTICE).pri == 165
    assert SyslogMessage(facility=None, severity=None).pri is None


def test_raw_bytes_take_no_part_in_equality() -> None:
    a = SyslogMessage(msg="x", raw=b"<13>1 - - - - - - x")
    b = SyslogMessage(msg="x", raw=b"<13>1 - - - - - -  x")
    assert a == b
    assert a != SyslogMessage(msg="y")


def test_structured_data_from_a_mapping_keeps_order_and_stringifies_values() -> None:
    sd = coerce_sd({"req@32473": {"id": 7, "path": "/x"}, "meta": [("sequenceId", 1)]})
    assert sd == (
        SDElement("req@32473", (("id", "7"), ("path", "/x"))),
        SDElement("meta", (("sequenceId", "1"),)),
    )
    assert sd[0].get("path") == "/x"
    assert sd[0].as_dict() == {"id": "7", "path": "/x"}
    assert coerce_sd(None) == ()


def test_structured_data_rejects_foreign_elements() -> None:
    with pytest.raises(TypeError):
        coerce_sd([("id", "v")])  # type: ignore[list-item]
