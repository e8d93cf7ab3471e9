"""The dictConfig and fileConfig examples of docs/logging-config.md, run against a real collector.

Each fenced block tagged `<!-- test: EXAMPLE/FILE -->` is written to EXAMPLE/FILE; the example's
`app.py` runs in a fresh interpreter (so `logging.shutdown()` at exit delivers what is queued,
as in a real program) with the documented address `127.0.0.1:5514` pointed at the test's
collector. What arrived is compared with EXPECTED, field by field. A block tagged
`<!-- arrives: EXAMPLE -->` shows a record as it goes on the wire; it is parsed and compared
with the first record the example sent. Every python and ini block of the page must be tagged.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from collector_support import Capture
from syslogkit import Facility, Severity, SyslogMessage, parse_5424
from syslogkit.collector import CollectorThread, Record

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC = DOCS / "logging-config.md"
#: docs/integrations.md: its examples are run by the test module of each integration.
INTEGRATIONS = DOCS / "integrations.md"
INTEGRATION_TESTS = {
    "structlog": "test_integration_structlog.py",
    "loguru": "test_integration_loguru.py",
    "asyncio": "test_aio.py",
}
BLOCK = re.compile(r"^(?:<!-- (test|arrives): (\S+) -->\n)?```(\w*)\n(.*?)^```$", re.M | re.S)
DOC_ADDRESS = "127.0.0.1:5514"


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


@dataclass
class Example:
    name: str
    files: dict[str, str] = field(default_factory=dict)
    arrives: str | None = None


def doc_examples(doc: Path) -> dict[str, Example]:
    """The tagged examples of a markdown page (also used for docs/integrations.md)."""
    found: dict[str, Example] = {}
    for match in BLOCK.finditer(doc.read_text(encoding="utf-8")):
        kind, target, language, body = match.groups()
        if kind is None:
            assert language not in ("python", "ini"), f"untested {language} block:\n{body}"
            continue
        name, _, filename = target.partition("/")
        example = found.setdefault(name, Example(name))
        if kind == "test":
            assert filename and filename not in example.files, target
            example.files[filename] = body
        else:
            example.arrives = body.strip()
    return found


EXAMPLES = doc_examples(DOC)


def test_every_example_is_run_and_every_expectation_has_its_example() -> None:
    assert set(EXAMPLES) == set(EXPECTED)
    for example in EXAMPLES.values():
        assert "app.py" in example.files, example.name
    integrations = doc_examples(INTEGRATIONS)
    assert set(integrations) == set(INTEGRATION_TESTS)
    here = Path(__file__).parent
    for name, module in INTEGRATION_TESTS.items():
        assert "app.py" in integrations[name].files, name
        assert f'doc_examples(INTEGRATIONS)["{name}"]' in (here / module).read_text(), module


def same_but_origin(shown: SyslogMessage, got: SyslogMessage | None) -> None:
    """A documented wire line and an arrived message agree but for time, host and pid."""
    assert got is not None
    origin: dict[str, Any] = {"timestamp": None, "hostname": None, "procid": None}
    assert replace(shown, **origin) == replace(got, **origin)


def run_example(example: Example, scheme: str, collector: CollectorThread, folder: Path) -> str:
    """Write the example's files with the documented address pointed at `collector` and run
    its app.py in a fresh interpreter; its stderr."""
    folder.mkdir()
    documented = f"{scheme}://{DOC_ADDRESS}"
    assert any(documented in text for text in example.files.values()), documented
    for filename, text in example.files.items():
        (folder / filename).write_text(text.replace(documented, collector.url(scheme)))
    done = subprocess.run(
        [sys.executable, "app.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def run_shop_integration_example(
    example: Example, capture: tuple[CollectorThread, Capture], folder: Path
) -> Record:
    """Run a docs/integrations.md example that logs an order placed (shown on the page as it
    arrives) and then a failed payment of the app "shop" with its traceback, over TCP to the
    `capture` collector; check both, and return the failed payment's record."""
    collector, sink = capture
    assert run_example(example, "tcp", collector, folder) == ""
    placed, failed = sink.wait(2)
    assert example.arrives is not None
    same_but_origin(parse_5424(example.arrives, "strict"), placed.message)
    message = failed.message
    assert message is not None and message.msg is not None
    assert message.severity == Severity.ERR and message.app_name == "shop"
    assert message.msg.startswith("payment failed\nTraceback (most recent call last):")
    assert message.msg.rstrip().endswith("ZeroDivisionError: division by zero")
    return failed


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
