"""The dictConfig and fileConfig examples of docs/logging-config.md, run against a real collector.

Each fenced block tagged `<!-- test: EXAMPLE/FILE -->` is written to EXAMPLE/FILE; the example's
`app.py` runs in a fresh interpreter (so `logging.shutdown()` at exit delivers what is queued,
as in a real program) with the documented address `127.0.0.1:5514` pointed at the test's
collector. What arrived is compared with EXPECTED, field by field. A block tagged
`<!-- arrives: EXAMPLE -->` shows a record as it goes on the wire; it is parsed and compared
with the first record the example sent. Every python and ini block of the page must be tagged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.collector import Capture
from support.docs import (
    DOC,
    INTEGRATION_TESTS,
    INTEGRATIONS,
    doc_examples,
    run_example,
    same_but_origin,
)
from syslogkit import Facility, Severity, SyslogMessage, parse_5424
from syslogkit.collector import CollectorThread


@dataclass(frozen=True)
class Expected:
    app_name: str
    facility: Facility
    severity: Severity
    msg: str
    msgid: str | None = None
    sd: dict[str, dict[str, str]] = field(default_factory=dict)


ENV = {"env@32473": {"dc": "fra1", "tier": "prod"}}
EXPECTED: dict[str, tuple[str, list[Expected], str]] = {
    # example: (scheme, records in order, what the example writes to stderr)
    "dictconfig": (
        "tcp",
        [
            Expected(
                "shop",
                Facility.LOCAL0,
                Severity.INFO,
                "shop.orders: order placed",
                "ORDER",
                {**ENV, "order@32473": {"id": "42", "total": "9.90"}},
            ),
            Expected(
                "shop",
                Facility.LOCAL0,
                Severity.ERR,
                "shop.payments: card declined for order 42",
                None,
                ENV,
            ),
        ],
        "card declined for order 42\n",
    ),
    "fileconfig": (
        "udp",
        [
            Expected(
                "billing",
                Facility.LOCAL3,
                Severity.INFO,
                "INFO invoice A-1001 sent",
                "BILL",
                {"env@32473": {"tier": "prod"}},
            ),
            Expected(
                "billing",
                Facility.LOCAL3,
                Severity.WARNING,
                "WARNING invoice A-0999 overdue",
                "BILL",
                {"env@32473": {"tier": "prod"}},
            ),
        ],
        "",
    ),
    "asyncio": (
        "udp",
        [Expected("api", Facility.USER, Severity.INFO, f"request {i} done") for i in range(3)],
        "",
    ),
}


EXAMPLES = doc_examples(DOC)


def test_every_example_is_run_and_every_expectation_has_its_example() -> None:
    assert set(EXAMPLES) == set(EXPECTED)
    for example in EXAMPLES.values():
        assert "app.py" in example.files, example.name
    integrations = doc_examples(INTEGRATIONS)
    assert set(integrations) == set(INTEGRATION_TESTS)
    here = Path(__file__).resolve().parents[1]
    for name, module in INTEGRATION_TESTS.items():
        assert "app.py" in integrations[name].files, name
        assert f'doc_examples(INTEGRATIONS)["{name}"]' in (here / module).read_text(), module


def fields(message: SyslogMessage | None) -> Expected:
    assert message is not None
    assert message.facility is not None and message.severity is not None
    return Expected(
        message.app_name or "",
        message.facility,
        message.severity,
        message.msg or "",
        message.msgid,
        message.sd_dict(),
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_documented_example_delivers_what_it_says(
    name: str, capture: tuple[CollectorThread, Capture], tmp_path: Path
) -> None:
    collector, sink = capture
    example = EXAMPLES[name]
    scheme, expected, expected_stderr = EXPECTED[name]
    stderr = run_example(example, scheme, collector, tmp_path / name)
    assert stderr == expected_stderr
    records = sink.arrived(len(expected))
    time.sleep(0.3)  # anything beyond what is expected would arrive within this
    records = sink.arrived(len(expected))
    for record in records:
        assert record.error is None, (record.error, record.raw)
    got = [fields(record.message) for record in records]
    if name == "asyncio":  # concurrent tasks over UDP: compare without order
        got.sort(key=lambda e: e.msg)
    assert got == expected
    for record in records:
        assert record.message is not None and record.message.procid is not None
        assert record.message.timestamp is not None

    if example.arrives is not None:
        same_but_origin(parse_5424(example.arrives, "strict"), records[0].message)
