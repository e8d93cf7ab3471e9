"""`syslogkit send` over TCP to a collector that refuses its connection: the collector's kernel
acknowledged the bytes, the collector closed unread; send notices the reset and exits 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.collector import stored, wait_for
from support.flood import OTHER, Flood
from syslogkit.cli.main import main
from syslogkit.collector import CollectorThread, Filters, Limits, SQLiteSink


def _send(port: int, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syslogkit", "send", "-a", f"tcp://127.0.0.1:{port}", text],
        capture_output=True,
        text=True,
        timeout=30,
    )


def _active(c: CollectorThread) -> int:
    return int(c.stats()["listeners"][0]["active"])


def test_send_over_tcp_exits_1_when_the_collector_refuses_its_connection(tmp_path: Path) -> None:
    """Another peer holding its two slots leaves send room (exit 0, stored); send's own peer
    (127.0.0.1) at its limit of two: send's connection is refused after its write was
    acknowledged by the kernel, and send says so and exits 1 instead of 0."""
    db = tmp_path / "s.db"
    limits = Limits(max_connections=4, max_connections_per_peer=2, frame_timeout=60.0)
    with CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(db)], limits=limits) as c:
        port = c.port("tcp")
        other = Flood(port, 2, source=OTHER)
        own = Flood(port, 2)
        try:
            other.open(2)
            wait_for(lambda: _active(c) == 2, what="the other peer's two connections")
            let_in = _send(port, "let in")
            assert let_in.returncode == 0, let_in.stderr
            wait_for(lambda: stored(db, Filters(search="let")), what="the first marker")
            own.open(2)
            wait_for(lambda: _active(c) == 4, what="send's peer at its limit")
            refused = _send(port, "refused")
            assert refused.returncode == 1, refused.stderr
            # the reset comes after the write (told as such), or, when the collector's thread
            # ran first, before it (the write fails: told as not delivered)
            assert (
                "closed the connection right after the last write" in refused.stderr
                and "relp://" in refused.stderr
            ) or "1 of 1 not delivered" in refused.stderr, refused.stderr
            assert refused.stderr.count("\n") == 1
            assert c.stats()["listeners"][0]["refused"] == 1
        finally:
            other.close()
            own.close()
    assert not stored(db, Filters(search="refused"))


def test_send_help_says_what_delivered_means_over_tcp_and_points_to_relp(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["send", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "at best acknowledged by the collector's kernel" in text
    assert "closes the connection without reading the bytes" in text and "relp://" in text
