"""`syslogkit send`: what a real rsyslog parses from it, exit status, and one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support.peers import PKI, RsyslogFactory
from syslogkit.cli.main import main


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syslogkit", "send", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _bom_stripped(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def test_send_over_tcp_delivers_every_field_rsyslog_parses(rsyslog: RsyslogFactory) -> None:
    peer = rsyslog(tcp=True)
    host, port = peer.address("tcp")
    result = _run(
        "-a", f"tcp://{host}:{port}", "-p", "local3.err", "-t", "backup", "-i", "77",
        "--hostname", "web1", "--msgid", "JOB",
        "--sd", 'job@32473 id="42" note="a \\"quoted\\" \\] value"', "job failed: naïve café",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (record,) = peer.messages(1)
    assert record["syslogfacility"] == 19 and record["syslogseverity"] == 3
    assert record["hostname"] == "web1"
    assert record["app-name"] == "backup"
    assert record["procid"] == "77"
    assert record["msgid"] == "JOB"
    assert record["structured-data"] == '[job@32473 id="42" note="a \\"quoted\\" \\] value"]'
    assert _bom_stripped(record["msg"]) == "job failed: naïve café"


def test_send_reads_one_message_per_stdin_line_over_udp_in_rfc3164(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(udp=True)
    host, port = peer.address("udp")
    result = _run(
        "-a", f"udp://{host}:{port}", "--rfc3164", "-t", "cron", "-p", "cron.info",
        stdin="first line\n\nsecond line\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = peer.messages(2)
    assert [r["app-name"] for r in records] == ["cron", "cron"]
    assert [r["msg"].strip() for r in records] == ["first line", "second line"]
    assert {r["pri"] for r in records} == {9 * 8 + 6}


def test_send_over_mutual_tls_with_client_certificate(rsyslog: RsyslogFactory, pki: PKI) -> None:
    peer = rsyslog(tls=True)
    host, port = peer.address("tls")
    result = _run(
        "-a", f"tls://{host}:{port}", "--ca-file", str(pki.ca.cert),
        "--cert-file", str(pki.client.cert), "--key-file", str(pki.client.key),
        "--server-hostname", "localhost", "over mutual TLS",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (record,) = peer.messages(1)
    assert record["msg"] == "over mutual TLS"


def test_send_exits_1_with_the_reason_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _run("-a", f"tcp://127.0.0.1:{port}", "--timeout", "1", "hello")
    assert result.returncode == 1
    assert "1 of 1 not delivered" in result.stderr
    assert "ConnectionRefusedError" in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr  # one line, the summary


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-p", "local9.info", "x"], "bad priority 'local9.info'"),
        (["-p", "user.loud", "x"], "bad priority 'user.loud'"),
        (["-a", "carrier-pigeon://x", "x"], "carrier-pigeon"),
        (["--sd", 'id="x"', "x"], "bad --sd"),
        (["-a", "tls://127.0.0.1:1", "--ca-file", "/nonexistent/ca.pem", "x"], "ca.pem"),
    ],
)
def test_send_user_mistakes_are_one_line_and_exit_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["send", *args]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.strip().count("\n") == 0


def test_send_help_shows_examples(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["send", "--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_send_tells_refusals_after_the_first_notice_with_the_final_count_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """40 lines on standard input to a RELP collector that refuses them all: the first refusal
    is told at once; the end is one line with the final count and the reason (over RELP a
    record written but refused is not delivered), exit 1."""
    import io

    from support.relp import FakeRelp

    server = FakeRelp(lambda n, message: "refuse")
    lines = "".join(f"line n={i}\n" for i in range(40))
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    try:
        status = main(["send", "-a", f"relp://127.0.0.1:{server.port}"])
    finally:
        server.close()
    assert status == 1
    err = capsys.readouterr().err.splitlines()
    told = [line for line in err if line.startswith("syslogkit")]
    assert told[-1] == (
        f"syslogkit send: 40 of 40 not delivered to relp://127.0.0.1:{server.port} "
        "(dropped 40: refused 40)"
    ), told
    assert len(told) <= 2 and all("Traceback" not in line for line in err)
