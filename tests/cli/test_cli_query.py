"""`syslogkit query 'EXPR'` against a store the collector wrote: the expression, the flags as
shorthands of it (same rows), errors with their column, the bound on examined rows."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.collector import feed, wait_stored
from syslogkit.collector import CollectorThread, SQLiteSink

FRAMES = [
    b'<11>1 2026-12-01T10:00:00Z web1 shop 11 PAY [order@32473 id="42"] GET /pay took=900ms',
    b'<14>1 2026-12-01T10:01:00Z web1 shop 12 CART [order@32473 id="43"] GET /cart took=12ms',
    b"<12>1 2026-12-01T10:02:00Z db1 postgres 2 - - disk almost full",
    b'<38>1 2026-12-01T10:03:00Z web2 sshd 7 - [meta sequenceId="150"] Accepted key',
    b"<15>1 2026-12-01T10:04:00Z db1 postgres 2 - - checkpoint done",
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cli-query") / "q.db"
    with CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(path)]) as c:
        feed(c.port("tcp"), FRAMES)
        wait_stored(path, len(FRAMES))
    yield path


def query(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syslogkit", "query", "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def msgids(db: Path, *args: str) -> list[str]:
    result = query(db, "--json", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["msgid"] or "-" for line in result.stdout.splitlines()]


def test_expression_selects_by_fields_and_structured_data(db: Path) -> None:
    assert msgids(db, "order@32473.id:42") == ["PAY"]
    assert msgids(db, "app:shop severity:<=err") == ["PAY"]
    assert msgids(db, "meta.sequenceId:>100 OR msgid:CART") == ["CART", "-"]
    assert msgids(db, "host:db1 -checkpoint") == ["-"]
    assert msgids(db, '"GET /cart"') == ["CART"]
    assert msgids(db, "_time:[2026-12-01T10:01:00Z, 2026-12-01T10:03:00Z)") == ["CART", "-"]
    assert query(db, "exists(order@32473)", "--count").stdout.strip() == "2"


def test_flags_are_shorthands_anded_to_the_expression(db: Path) -> None:
    for flags, expression in [
        (["--host", "db1", "--host", "web2"], "host:db1 OR host:web2"),
        (["-p", "warning", "--app", "postgres"], "severity:<=warning app:postgres"),
        (["--search", "took"], "took"),
        (["--facility", "auth"], "facility:auth"),
        (["--since", "2026-12-01T10:02:00Z"], "_time:>=2026-12-01T10:02:00Z"),
    ]:
        assert msgids(db, *flags) == msgids(db, expression), expression
    assert msgids(db, "took", "--host", "web1", "-p", "err") == ["PAY"]


def test_a_syntax_error_says_the_column_and_what_was_expected(db: Path) -> None:
    result = query(db, "host:web1 AND (error")
    assert result.returncode == 2
    assert "column 21: expected ')' to close the '(' at column 15" in result.stderr
    assert result.stderr.rstrip().endswith(" " * 22 + "^")


def test_a_predicate_stopped_by_its_bound_says_so(db: Path) -> None:
    result = query(db, 'msg:~"nothing like this"', "--max-scan", "2", "--json")
    assert result.returncode == 0 and result.stdout == ""
    assert "stopped after examining 2 rows" in result.stderr


def test_pipes_print_a_table_or_json_lines(db: Path) -> None:
    table = query(db, "| stats count() by (host)")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines() == ["HOST  COUNT()", "db1   2", "web1  2", "web2  1"]
    result = query(db, 'app:shop | extract "took=<ms>ms" | ms:>=100 | fields msgid, ms', "--json")
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"msgid": "PAY", "ms": "900"}
    ]
    top = query(db, "| top 1 by (app)", "--json")
    assert json.loads(top.stdout) == {"app": "postgres", "count": 2}
    assert query(db, "| logfmt | took:*", "--count").stdout.strip() == "2"


def test_a_pipe_stopped_by_its_bound_says_so(db: Path) -> None:
    """(`stats count()` alone is a GROUP BY in SQL, which reads no record: no bound.)"""
    result = query(db, "| logfmt | stats count()", "--max-scan", "3", "--json")
    assert json.loads(result.stdout) == {"count()": 3}
    assert "the pipes stopped after 3 rows" in result.stderr


def test_tail_takes_the_expression_too(db: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "syslogkit", "tail", "--db", str(db), "--no-follow", "--json",
         "-n", "5", "order@32473.id:* -msgid:CART"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["msgid"] for line in result.stdout.splitlines()] == ["PAY"]
    piped = subprocess.run(
        [sys.executable, "-m", "syslogkit", "tail", "--db", str(db), "--no-follow", "| limit 1"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert piped.returncode == 2 and "pipes are not taken here" in piped.stderr
