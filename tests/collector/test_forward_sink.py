"""The forward sink tells every loss with its final count (issue 18): a destination that
refuses every record (RELP 500) after the first told at once, nothing left queued at close:
close says the total and the reason in one line."""

from __future__ import annotations

import pytest

from support.relp import FakeRelp
from syslogkit.collector.record import Record
from syslogkit.collector.sinks.forward import ForwardSink

N = 40


def _records(first: int, count: int) -> list[Record]:
    return [
        Record(
            f"<13>1 - host app - - - record n={i}".encode(),
            0.0,
            "tcp",
            "127.0.0.1:1",
            "tcp://127.0.0.1:5514",
            message=None,
        )
        for i in range(first, first + count)
    ]


def test_the_forward_sink_tells_refusals_after_the_first_notice_with_the_final_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = FakeRelp(lambda n, message: "refuse")
    try:
        sink = ForwardSink(f"relp://127.0.0.1:{server.port}")
        sink.write(_records(0, 1))
        assert sink._delivery.flush(10.0)  # the first refusal: told at once
        sink.write(_records(1, N - 1))
        assert sink._delivery.flush(10.0)
        assert sink.stats()["pending"] == 0  # nothing left in memory at close
        sink.close(2.0)
    finally:
        server.close()
    assert sink.stats()["dropped_refused"] == N
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("syslogkit")]
    assert len(lines) == 2, lines
    assert "1 so far (refused 1)" in lines[0]
    assert lines[1].startswith(
        f"syslogkit: at close, {N} records dropped in all to relp://127.0.0.1:{server.port} "
        f"(refused {N})"
    ), lines[1]
