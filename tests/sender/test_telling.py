"""The handler and the asyncio handler tell every loss with its final count (issue 18): records
refused after the first (told at once, rate limited) are told again at close, with the total
and the reason, even though nothing is left in the queue by then."""

from __future__ import annotations

import asyncio
import logging

import pytest

from support.relp import FakeRelp
from support.relp import transport as relp_transport
from syslogkit import SyslogHandler
from syslogkit.delivery.sync import SyncDelivery
from syslogkit.sender.aio import AsyncSyslogHandler

N = 40


def _record(i: int) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": f"record n={i}", "levelno": logging.WARNING})


def _syslogkit_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("syslogkit:")]


def _assert_told(err: str, port: int) -> None:
    lines = _syslogkit_lines(err)
    assert len(lines) == 2, lines
    assert "1 so far (refused 1)" in lines[0]
    assert lines[1].startswith(
        f"syslogkit: at close, {N} records dropped in all to relp://127.0.0.1:{port} (refused {N})"
    ), lines[1]
    assert "Traceback" not in err


def _log_refused(handler: SyslogHandler) -> None:
    handler.handle(_record(0))
    handler.flush(10.0)  # the first refusal: told at once
    for i in range(1, N):
        handler.handle(_record(i))
    handler.flush(10.0)
    assert handler.delivery.flush(0.0)  # nothing left in the queue: all answered


def test_the_handler_tells_refusals_after_the_first_notice_with_the_final_count_at_close(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = FakeRelp(lambda n, message: "refuse")
    try:
        handler = SyslogHandler(f"relp://127.0.0.1:{server.port}")
        _log_refused(handler)
        handler.close(2.0)
    finally:
        server.close()
    assert handler.stats["dropped_refused"] == N
    _assert_told(capsys.readouterr().err, server.port)


def test_the_asyncio_handler_tells_refusals_after_the_first_notice_with_the_final_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = FakeRelp(lambda n, message: "refuse")

    async def main() -> AsyncSyslogHandler:
        handler = AsyncSyslogHandler(f"relp://127.0.0.1:{server.port}")
        await asyncio.to_thread(_log_refused, handler)
        await handler.aclose(2.0)
        return handler

    try:
        handler = asyncio.run(main())
    finally:
        server.close()
    assert handler.stats["dropped_refused"] == N
    _assert_told(capsys.readouterr().err, server.port)


def test_the_sync_handler_tells_the_final_count_of_records_dropped_at_close(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Sync delivery to a port nothing listens on: 5 records dropped in the calls, told in one
    line at the first (rate limited, no total); close says the total and the reason."""
    handler = SyslogHandler(
        "tcp://127.0.0.1:1", delivery="sync", timeout=0.5, backoff_initial=0, backoff_max=0
    )
    for i in range(5):
        handler.handle(_record(i))
    handler.close()
    lines = _syslogkit_lines(capsys.readouterr().err)
    assert len(lines) == 2, lines
    assert "ConnectionRefusedError" in lines[0]
    assert lines[1] == (
        "syslogkit: at close, 5 records dropped in all to tcp://127.0.0.1:1 (unreachable 5)"
    )


def test_a_record_refused_over_relp_in_sync_delivery_is_dropped_not_sent_again() -> None:
    """A RELP 500 is refused for good (librelp's reading): synchronous delivery (the caller
    writes and waits for the answer) counts it as dropped (`refused`) and does not write it
    again on a new connection."""
    server = FakeRelp(lambda n, message: "refuse")
    try:
        delivery = SyncDelivery(relp_transport(server.port))
        for i in range(3):
            delivery.deliver(f"<13>1 - h app - - - record n={i}".encode())
        delivery.close()
    finally:
        server.close()
    assert len(server.messages) == 3, server.messages
    stats = delivery.stats.snapshot()
    assert stats["dropped"] == stats["dropped_refused"] == 3


def test_a_collector_refusing_the_first_connection_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A default handler (background, stock handleError) whose collector refuses the
    connection: stderr holds one line for the refusal, then the one line at close with the
    count; never `--- Logging error ---`. The stats keep the exception."""
    handler = SyslogHandler("tcp://127.0.0.1:1", timeout=0.5)
    handler.handle(_record(0))
    assert handler.delivery.flush(1.0) is False
    stats = handler.stats
    handler.close(0.5)
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("syslogkit: tcp://127.0.0.1:1: ConnectionRefusedError")
    assert lines[1].startswith("syslogkit: at close, 1 records not delivered to tcp://127.0.0.1:1")
    assert stats["errors"] >= 1 and "ConnectionRefusedError" in stats["last_error"]
