"""The examples of docs/logging-config.md and docs/integrations.md, and running them.

Each fenced block tagged `<!-- test: EXAMPLE/FILE -->` is written to EXAMPLE/FILE; the example's
`app.py` runs in a fresh interpreter with the documented address `127.0.0.1:5514` pointed at
the test's collector. A block tagged `<!-- arrives: EXAMPLE -->` shows a record as it goes on
the wire.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from support.collector import Capture
from syslogkit import Severity, SyslogMessage, parse_5424
from syslogkit.collector import CollectorThread, Record

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC = DOCS / "logging-config.md"
#: docs/integrations.md: its examples are run by the test module of each integration.
INTEGRATIONS = DOCS / "integrations.md"
INTEGRATION_TESTS = {
    "structlog": "sender/test_integration_structlog.py",
    "loguru": "sender/test_integration_loguru.py",
    "asyncio": "sender/test_aio.py",
}
BLOCK = re.compile(r"^(?:<!-- (test|arrives): (\S+) -->\n)?```(\w*)\n(.*?)^```$", re.M | re.S)
DOC_ADDRESS = "127.0.0.1:5514"


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
