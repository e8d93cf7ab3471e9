"""The file sink (collector/sinks/file.py): path templates, hostile names, formats, open files,
logrotate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from syslogkit.codec.message import Facility, Severity, SyslogMessage
from syslogkit.collector.decode import parse_frame
from syslogkit.collector.record import Record
from syslogkit.collector.sinks.file import NAME_MAX_BYTES, FileSink, safe_name

DAY = 1_796_000_000.0  # 2026-11-30 UTC


def rec(
    host: str | None = "web-1",
    app: str | None = "sshd",
    msg: str = "hello",
    *,
    raw: bytes | None = None,
    peer: str = "192.0.2.9:514",
) -> Record:
    message = SyslogMessage(
        facility=Facility.AUTH, severity=Severity.ERR, hostname=host, app_name=app, msg=msg
    )
    return Record(
        raw=raw or f"<35>1 - {host} {app} - - - {msg}".encode("utf-8", "replace"),
        received_at=DAY,
        transport="udp",
        peer=peer,
        listener="udp://127.0.0.1:514",
        message=message,
    )


def files_under(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


def write(sink: FileSink, *records: Record) -> None:
    sink.write(list(records))
    sink.flush()


HOSTILE = [
    "../../etc",
    "..",
    ".",
    "/etc/passwd",
    "a/../../b",
    "nul\x00byte",
    "esc\x1b[31mape",
    "new\nline",
    "back\\slash",
    "x" * 5000,
    "é" * 300,
    "",
    None,
]


@pytest.mark.parametrize("host", HOSTILE, ids=lambda h: repr(h)[:20])
def test_hostile_hostnames_stay_inside_the_base_folder(tmp_path: Path, host: str | None) -> None:
    base = tmp_path / "remote"
    base.mkdir()
    (tmp_path / "etc").mkdir()
    sink = FileSink(f"{base}/{{host}}/{{app}}.log")
    write(sink, rec(host, app=host))
    sink.close()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) == 1
    path = written[0]
    assert path.is_relative_to(base) and path.parent.parent == base
    for part in path.relative_to(base).parts:
        assert part not in (".", "..") and not part.startswith(".")
        assert len(part.encode()) <= NAME_MAX_BYTES + len(".log")
        assert all(c.isprintable() for c in part) and "\\" not in part
    assert files_under(tmp_path / "etc") == []


def test_safe_name() -> None:
    assert safe_name("web-1.example.com") == "web-1.example.com"
    assert safe_name("../../etc") == "_._.._etc"
    assert safe_name("..") == "_."
    assert safe_name("a\x00b\x7fc") == "a_b_c"
    assert safe_name(None) == safe_name("") == "-"
    assert safe_name("é" * 300) == "é" * (NAME_MAX_BYTES // 2)  # cut between characters
    assert len(safe_name("é" * 51 + "x").encode()) <= NAME_MAX_BYTES


def test_template_fields_and_the_three_line_formats(tmp_path: Path) -> None:
    for fmt in ("raw", "human", "json"):
        sink = FileSink(
            f"{tmp_path}/{fmt}/{{date}}/{{facility}}.{{severity}}/{{peer}}-{{host}}.log",
            format=fmt,
        )
        write(sink, rec(msg="one"), rec(msg="two\nlines", peer="[2001:db8::1]:9"))
        sink.close()
    assert files_under(tmp_path / "raw") == [
        "2026-11-30/auth.err/192.0.2.9-web-1.log",
        "2026-11-30/auth.err/2001:db8::1-web-1.log",
    ]
    raw = (tmp_path / "raw/2026-11-30/auth.err/2001:db8::1-web-1.log").read_bytes()
    assert raw == b"<35>1 - web-1 sshd - - - two\\nlines\n"  # one record, one line
    human = (tmp_path / "human/2026-11-30/auth.err/192.0.2.9-web-1.log").read_text()
    assert human.endswith(" web-1 sshd err: one\n")
    line = (tmp_path / "json/2026-11-30/auth.err/2001:db8::1-web-1.log").read_text()
    assert json.loads(line)["msg"] == "two\nlines"


def test_an_unparsed_record_goes_to_the_dash_names(tmp_path: Path) -> None:
    raw = b"\x00\x01 not syslog"
    message, error, msg_bytes = parse_frame(raw)
    record = Record(
        raw=raw,
        received_at=DAY,
        transport="tcp",
        peer="127.0.0.1:1",
        listener="tcp://127.0.0.1:2",
        message=message,
        error=error,
        msg_bytes=msg_bytes,
    )
    sink = FileSink(f"{tmp_path}/{{host}}/{{app}}.log")
    write(sink, record)
    sink.close()
    assert len(files_under(tmp_path)) == 1


def test_at_most_max_open_files_are_open_and_nothing_is_lost(tmp_path: Path) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    sink = FileSink(f"{tmp_path}/{{host}}.log", max_open=3)
    before = fds()
    for round_ in range(4):
        write(sink, *[rec(f"h{i}", msg=f"r{round_}") for i in range(10)])
        assert sink.stats()["files_open"] == 3
        assert fds() - before <= 3
    sink.close()
    assert fds() == before
    for i in range(10):
        lines = (tmp_path / f"h{i}.log").read_text().splitlines()
        assert [line.rsplit(" ", 1)[1] for line in lines] == ["r0", "r1", "r2", "r3"]


def test_reopen_after_logrotate_writes_a_new_file(tmp_path: Path) -> None:
    sink = FileSink(f"{tmp_path}/{{host}}.log")
    write(sink, rec(msg="before"))
    os.rename(tmp_path / "web-1.log", tmp_path / "web-1.log.1")  # logrotate
    write(sink, rec(msg="still the old file"))  # no HUP yet: the open file is the renamed one
    sink.reopen()
    write(sink, rec(msg="after"))
    sink.close()
    assert (tmp_path / "web-1.log.1").read_text().count("\n") == 2
    assert (tmp_path / "web-1.log").read_text().endswith("after\n")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("/var/log/{hostname}.log", "{hostname} is not a field"),
        ("/var/log/{host!r}.log", "{host} is not a field"),
        ("/var/log/{host}/../x.log", "no '..'"),
    ],
)
def test_a_bad_template_is_refused(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        FileSink(template)


def test_a_batch_that_fails_part_way_is_taken_back_and_written_once_on_retry(
    tmp_path: Path,
) -> None:
    sink = FileSink(f"{tmp_path}/{{host}}.log")
    write(sink, rec("a", msg="earlier"))
    (tmp_path / "b.log").mkdir()  # the second file of the batch cannot be opened
    batch = [rec("a", msg="one"), rec("b", msg="two")]
    with pytest.raises(IsADirectoryError):
        sink.write(batch)
    (tmp_path / "b.log").rmdir()
    write(sink, *batch)  # the pipeline's retry
    sink.close()
    assert [x.rsplit(" ", 1)[1] for x in (tmp_path / "a.log").read_text().splitlines()] == [
        "earlier",
        "one",
    ]
    assert (tmp_path / "b.log").read_text().endswith("two\n")
