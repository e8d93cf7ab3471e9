"""Every rfc3164 and rfc3164-lenient case of shared/vectors/messages.json, field by field.

How the cases run:
- profile `rfc3164` (go-syslog's suite): `mode="strict"` with go-syslog's defaults, so PRI is
  required unless the case names `optional_priority`. Its successful cases also run in lenient
  mode, which must agree.
- profile `rfc3164-lenient` (syslog-loose, Vector): `mode="lenient"`; a case that expects an error
  is syslog-loose's "exact" API, i.e. `mode="strict"`.
- `options` map to keyword arguments (OPTION_MAP); every BSD timestamp gets its year and zone from
  REFERENCE (mid-2019 UTC, the year the Feb 29 case names).
- Expected "Mmm dd hh:mm:ss[.fff]" timestamps compare month, day and time, with the year and zone
  from REFERENCE; RFC 3339 strings compare as aware datetimes.
- DEPARTURES lists the cases where an RFC overrides the vector, with the section.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from syslogkit import ParseError, SDElement, SyslogMessage
from syslogkit.codec.rfc3164 import parse_3164

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "messages.json"
PROFILES = ("rfc3164", "rfc3164-lenient")
REFERENCE = datetime(2019, 6, 15, 12, 0, 0, tzinfo=timezone.utc)

OPTION_MAP: dict[str, dict[str, Any]] = {
    "ciscoios.All": {"cisco": True},
    "ciscoios.DisableSequenceNumber|DisableHostname": {"cisco": "no-sequence|no-hostname"},
    "rfc3339": {"rfc3339": True},
    "optional_priority": {"optional_priority": True},
}

_BAREWORD = (
    "RFC 3164 §5.4 Example 2 (with §4.3.2): a word after HOSTNAME that has no TAG terminator "
    "(':' or '[pid]', §5.3) is CONTENT, as in '<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!', "
    "whose 'Use' the RFC does not read as a TAG; the non-alphanumeric characters of this word "
    "could not be a TAG under §4.1.3 either"
)
#: input -> (fields that differ from the vector, the RFC section that overrides it)
DEPARTURES: dict[str, tuple[dict[str, Any], str]] = {
    "<46>Jan 5 10:01:00 Übergröße außerplanmäßig größenordnungsmäßig": (
        {"app_name": None, "msg": "außerplanmäßig größenordnungsmäßig"},
        _BAREWORD,
    ),
    "<131>Jun 8 11:54:08 master apache_error [Tue Jun 08 11:54:08.929301 2021] [php7:emerg] "
    "[pid 1374899] [client 95.223.77.60:41888] rest of message": (
        {
            "app_name": None,
            "msg": "apache_error [Tue Jun 08 11:54:08.929301 2021] [php7:emerg] [pid 1374899] "
            "[client 95.223.77.60:41888] rest of message",
        },
        _BAREWORD,
    ),
}


def _load_cases() -> list[Any]:
    if not VECTORS.is_file():
        return [pytest.param(None, id="vectors-missing")]
    cases = [c for c in json.loads(VECTORS.read_text("utf-8")) if c["profile"] in PROFILES]
    return [
        pytest.param(case, id=f"{i:02d}-{case['profile']}-{case['input'][:40]}")
        for i, case in enumerate(cases)
    ]


CASES = _load_cases()


def _require(case: dict[str, Any] | None) -> dict[str, Any]:
    if case is None:
        pytest.fail(f"test vectors not found: {VECTORS} (shared/vectors/messages.json)")
    return case


def _kwargs(case: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"reference": REFERENCE}
    if case["profile"] == "rfc3164":
        kwargs["optional_priority"] = False  # go-syslog's default
    for option in case.get("options", []):
        if option not in OPTION_MAP:
            pytest.fail(f"vector option {option!r} has no mapping in OPTION_MAP")
        kwargs.update(OPTION_MAP[option])
    return kwargs


_BSD = re.compile(r"([A-Za-z]{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?$")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def _expected_timestamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    m = _BSD.match(text)
    if m is None:
        return datetime.fromisoformat(text)
    month = _MONTHS.index(m[1].lower()) + 1
    micro = int((m[6] or "0").ljust(6, "0"))
    return datetime(REFERENCE.year, month, int(m[2]), int(m[3]), int(m[4]), int(m[5]), micro,
                    tzinfo=REFERENCE.tzinfo)  # fmt: skip


def _expected_sd(value: list[dict[str, Any]] | None) -> tuple[SDElement, ...]:
    return tuple(SDElement(e["id"], tuple((k, v) for k, v in e["params"])) for e in value or ())


def _assert_fields(msg: SyslogMessage, expect: dict[str, Any]) -> None:
    got = {
        "facility": msg.facility,
        "severity": msg.severity,
        "version": msg.version,
        "timestamp": msg.timestamp,
        "hostname": msg.hostname,
        "app_name": msg.app_name,
        "procid": msg.procid,
        "msgid": msg.msgid,
        "structured_data": msg.structured_data,
        "msg": msg.msg,
        "extra": msg.extra,
    }
    want = {
        "facility": expect["facility"],
        "severity": expect["severity"],
        "version": expect["version"],
        "timestamp": _expected_timestamp(expect["timestamp"]),
        "hostname": expect["hostname"],
        "app_name": expect["app_name"],
        "procid": expect["procid"],
        "msgid": expect["msgid"],
        "structured_data": _expected_sd(expect["structured_data"]),
        "msg": expect["msg"],
        "extra": expect.get("extra"),
    }
    assert got == want


@pytest.mark.parametrize("case", CASES)
def test_vector_3164_fields_or_error_match(case: dict[str, Any] | None) -> None:
    case = _require(case)
    expect = dict(case["expect"])
    kwargs = _kwargs(case)
    if "error" in expect:
        with pytest.raises(ParseError) as info:
            parse_3164(case["input"], "strict", **kwargs)
        if "error_col" in case:  # go-syslog's 0-based column; ours is 1-based
            assert info.value.column == case["error_col"] + 1
        return
    mode = "strict" if case["profile"] == "rfc3164" else "lenient"
    override, reason = DEPARTURES.get(case["input"], ({}, ""))
    assert not override or reason  # every departure names its RFC section
    expect.update(override)
    _assert_fields(parse_3164(case["input"], mode, **kwargs), expect)


@pytest.mark.parametrize("case", CASES)
def test_vector_3164_lenient_mode_agrees_and_never_raises(case: dict[str, Any] | None) -> None:
    case = _require(case)
    expect = dict(case["expect"])
    msg = parse_3164(case["input"], "lenient", **_kwargs(case))
    assert msg.raw == case["input"].encode()
    if "error" in expect:
        return  # lenient mode reads what it can; the error belongs to strict mode
    expect.update(DEPARTURES.get(case["input"], ({}, ""))[0])
    _assert_fields(msg, expect)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.values[0] is None or "best_effort_partial" in c.values[0]],
)
def test_vector_3164_best_effort_partial_holds_what_parsed_before_the_fault(
    case: dict[str, Any] | None,
) -> None:
    case = _require(case)
    with pytest.raises(ParseError) as info:
        parse_3164(case["input"], "best_effort", **_kwargs(case))
    partial = info.value.partial
    assert partial is not None
    for field, value in case["best_effort_partial"].items():
        assert getattr(partial, field) == value, field


def test_vector_file_has_the_3164_cases_it_promises() -> None:
    case = _require(CASES[0].values[0])
    assert case["profile"] in PROFILES
    assert len(CASES) == 36  # 21 rfc3164 + 15 rfc3164-lenient (shared/vectors/README.md)
