"""Every rfc5424 / rfc5424-lenient case of shared/vectors/messages.json through parse_5424.

Field by field; errors with their column (go-syslog's 0-based `error_col` + 1); the best-effort
partial where the case gives one; `options` mapped to keyword arguments.

Where this library departs from a case, the rule that wins is named where the expectation is
adjusted (`expected_fields`, `test_year_0000_*`):
- RFC 5424 §6.4: the BOM marks MSG-UTF8, it is not text; it is removed from `msg` and reported as
  `bom=True` (go-syslog keeps it in the message).
- Year 0000 follows the RFC 3339 grammar, but Python's datetime starts at year 1: strict parsing
  says so explicitly (the case's notes allow "error explicitly"); lenient keeps the text in
  `extra["timestamp_raw"]`.
Case 75 (`\\n` inside PARAM-VALUE) follows RFC 5424 §6.3.3 where go-syslog does not: an invalid
escape stays as written; the vector already expects that.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from syslogkit.codec.message import ParseError, SDElement, SyslogMessage
from syslogkit.codec.rfc5424 import parse_5424

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "messages.json"
MODES = {"rfc5424": "strict", "rfc5424-lenient": "lenient"}
OPTIONS = {"compliant_msg", "optional_priority"}
HEADER = ("facility", "severity", "version", "hostname", "app_name", "procid", "msgid")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50].rstrip("-")


def _cases() -> list[Any]:
    if not VECTORS.is_file():
        return [pytest.param(None, id="vectors-missing")]
    cases = json.loads(VECTORS.read_text(encoding="utf-8"))
    out = []
    for index, case in enumerate(cases):
        if case["profile"] not in MODES:
            continue
        expect = case["expect"]
        what = f"error-{expect['error']}" if "error" in expect else case["notes"] or "ok"
        out.append(pytest.param(case, id=f"{index:03d}-{case['profile']}-{_slug(what)}"))
    return out


CASES = _cases()


def _input(case: dict[str, Any]) -> bytes:
    if case.get("input_hex"):
        return bytes.fromhex(case["input_hex"])
    return str(case["input"]).encode("utf-8")


def _options(case: dict[str, Any]) -> dict[str, bool]:
    unknown = set(case.get("options", [])) - OPTIONS
    assert not unknown, f"vector option(s) {unknown} have no parse_5424 keyword"
    return {name: True for name in case.get("options", [])}


def _timestamp(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _sd(value: list[dict[str, Any]] | None) -> tuple[SDElement, ...]:
    return tuple(
        SDElement(e["id"], tuple((str(k), str(v)) for k, v in e["params"])) for e in value or ()
    )


def expected_fields(expect: dict[str, Any], *, timestamp: bool = True) -> dict[str, Any]:
    """The vector's expectation in this library's terms."""
    out = {name: expect[name] for name in HEADER}
    out["timestamp"] = _timestamp(expect["timestamp"]) if timestamp else None
    out["structured_data"] = _sd(expect["structured_data"])
    if "msg_hex" in expect:
        # MSG-ANY that is not UTF-8: decoded with replacement, the bytes stay in `raw`.
        out["msg"] = bytes.fromhex(expect["msg_hex"]).decode("utf-8", "replace")
        out["bom"] = False
    else:
        msg = expect["msg"]
        # RFC 5424 §6.4: the BOM marks MSG-UTF8; it is removed from msg and reported as bom=True.
        out["bom"] = msg is not None and msg.startswith("\ufeff")
        out["msg"] = msg[1:] if out["bom"] else msg
    return out


def assert_fields(msg: SyslogMessage, expect: dict[str, Any]) -> None:
    for name, value in expect.items():
        got = getattr(msg, name)
        if name in ("facility", "severity") and got is not None:
            got = int(got)
        assert got == value, f"{name}: got {got!r}, expected {value!r}"
        if name == "timestamp" and value is not None:
            assert got.utcoffset() == value.utcoffset(), "timestamp offset differs"


def _is_year_0000(case: dict[str, Any]) -> bool:
    return str(case["expect"].get("timestamp") or "").startswith("0000-")


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.values[0] is None or not _is_year_0000(c.values[0])]
)
def test_vector(case: dict[str, Any] | None) -> None:
    if case is None:
        pytest.fail(f"test vectors missing: expected {VECTORS} (shared/vectors next to the repo)")
    data = _input(case)
    mode = MODES[case["profile"]]
    options = _options(case)
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises(ParseError) as caught:
            parse_5424(data, mode, **options)
        if "error_col" in case:
            assert caught.value.column == case["error_col"] + 1, str(caught.value)
        assert caught.value.partial is None
        assert str(caught.value.column) in str(caught.value)
        return
    msg = parse_5424(data, mode, **options)
    assert_fields(msg, expected_fields(expect))
    assert msg.raw == data
    if mode == "strict":
        assert parse_5424(data, "best_effort", **options) == msg
    if not case.get("input_hex"):
        assert parse_5424(case["input"], mode, **options) == msg, "str input differs from bytes"


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.values[0] is None or "error" in c.values[0]["expect"]]
)
def test_vector_error_best_effort_partial(case: dict[str, Any] | None) -> None:
    """best_effort raises the same error, with what parsed before the fault in .partial."""
    if case is None:
        pytest.fail(f"test vectors missing: expected {VECTORS}")
    data = _input(case)
    options = _options(case)
    with pytest.raises(ParseError) as strict:
        parse_5424(data, "strict", **options)
    with pytest.raises(ParseError) as caught:
        parse_5424(data, "best_effort", **options)
    assert caught.value.column == strict.value.column
    partial = caught.value.partial
    assert isinstance(partial, SyslogMessage)
    assert partial.raw == data
    for name, value in case.get("best_effort_partial", {}).items():
        got = getattr(partial, name)
        if name in ("facility", "severity"):
            got = int(got)
        if name == "timestamp":
            value = _timestamp(value)
        assert got == value, f"partial {name}: got {got!r}, expected {value!r}"


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.values[0] is None or "error" in c.values[0]["expect"]]
)
def test_vector_error_input_is_read_by_lenient_without_raising(case: dict[str, Any] | None) -> None:
    if case is None:
        pytest.fail(f"test vectors missing: expected {VECTORS}")
    msg = parse_5424(_input(case), "lenient")
    assert isinstance(msg, SyslogMessage)


YEAR_0000 = [c for c in CASES if c.values[0] is not None and _is_year_0000(c.values[0])]


@pytest.mark.parametrize("case", YEAR_0000)
def test_year_0000_strict_says_python_cannot_hold_it(case: dict[str, Any]) -> None:
    """RFC 3339 admits year 0000, Python's datetime does not: an explicit error at the year."""
    data = _input(case)
    with pytest.raises(ParseError, match="year 0000") as caught:
        parse_5424(data)
    assert caught.value.column == data.index(b"0000-") + 1


@pytest.mark.parametrize("case", YEAR_0000)
def test_year_0000_lenient_keeps_every_other_field_and_the_text(case: dict[str, Any]) -> None:
    msg = parse_5424(_input(case), "lenient")
    expect = expected_fields(case["expect"], timestamp=False)
    assert_fields(msg, expect)
    assert msg.extra == {"timestamp_raw": case["expect"]["timestamp"]}


def test_vector_file_holds_rfc5424_cases() -> None:
    assert VECTORS.is_file(), f"test vectors missing: expected {VECTORS}"
    assert len(CASES) >= 90
