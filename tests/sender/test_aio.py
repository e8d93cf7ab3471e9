"""AsyncSyslogHandler: an application on an event loop logs without the loop waiting on the network.

The structural test stalls a real collector (its sink blocks, so it stops reading: back-pressure)
until the kernel's socket buffers are full and the handler's writer cannot write, then checks that
thousands of log calls made on the loop all return while nothing can be written, and that a timer
task on the loop kept running. A control shows that the same stall does block a loop that logs
through a synchronous handler, so the measurement can tell the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.docs import INTEGRATIONS, doc_examples, run_example
from syslogkit import Severity, SyslogHandler
from syslogkit.collector import CollectorThread, Record
from syslogkit.sender.aio import AsyncSyslogHandler

PAD = "x" * 2000
NUMBER = re.compile(r"n=(\d+)")


class Gate:
    """A collector sink that keeps what arrived, and can be shut so that the collector stalls."""

    def __init__(self, shut: bool = False) -> None:
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._open = threading.Event()
        if not shut:
            self._open.set()

    def open(self) -> None:
        self._open.set()

    def write(self, records: Any) -> None:
        self._open.wait(30.0)
        with self._lock:
            self.records.extend(records)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._open.set()

    def count(self) -> int:
        with self._lock:
            return len(self.records)

    def numbers(self) -> list[int]:
        with self._lock:
            texts = [r.message.msg or "" for r in self.records if r.message]
        return [int(m.group(1)) for m in map(NUMBER.search, texts) if m]

    async def wait(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert self.count() >= count, f"{self.count()} of {count} records arrived"


@contextlib.contextmanager
def collector(gate: Gate, **options: Any) -> Iterator[CollectorThread]:
    c = CollectorThread(["udp://127.0.0.1:0", "tcp://127.0.0.1:0"], [gate], **options)
    c.start()
    try:
        yield c
    finally:
        gate.open()
        c.stop(10.0)


def logger_for(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(f"test.aio.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


class Heartbeat:
    """A task on the loop that ticks every `interval` seconds and keeps the longest gap."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.ticks = 0
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now
            self.ticks += 1

    def __enter__(self) -> Heartbeat:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def until_still(value: Callable[[], int], quiet: float = 0.5, limit: float = 15.0) -> int:
    """Wait (on the loop) until `value()` has not changed for `quiet` seconds; return it."""
    deadline = time.monotonic() + limit
    seen, since = value(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        now = value()
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return seen


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 50.0))


def test_log_calls_on_the_loop_never_wait_for_a_stalled_collector() -> None:
    total = 20_000  # 2 kB each: far more than the socket buffers hold (the test checks it)
    gate = Gate(shut=True)

    async def main() -> None:
        with collector(gate, high_water=100) as c:
            handler = AsyncSyslogHandler(
                c.url("tcp"),
                app_name="aio-stall",
                timeout=30.0,  # a write that waited for the network would stall the loop 30 s
                delivery_options={"queue_size": total},
            )
            log = logger_for(handler, "stall")
            with Heartbeat() as beat:
                for chunk in range(0, total, 500):
                    for n in range(chunk, chunk + 500):
                        log.info("n=%d %s", n, PAD)
                    await asyncio.sleep(0)
                # Every call has returned. Now show that the network was stalled meanwhile:
                # the writer is stuck with records it cannot write, and nothing was stored.
                written = await until_still(lambda: handler.stats["sent"], quiet=1.0)
                assert written < total, "the network took everything: not a stall, enlarge total"
                assert gate.count() == 0
                ticks = beat.ticks
                await asyncio.sleep(0.5)
                assert handler.stats["sent"] < total  # still stalled...
                assert beat.ticks > ticks  # ...and the loop's timer task still runs
                gate.open()
                await handler.aflush(30.0)
                await gate.wait(total)
                await handler.aclose(5.0)
            # A single write waiting for the network would have held the loop for up to 30 s.
            assert beat.longest < 10.0, beat.longest
            assert gate.numbers() == list(range(total))
            stats = handler.stats
            assert stats["sent"] == stats["queued"] == total and stats["dropped"] == 0

    run(main)


def test_control_the_same_stall_blocks_a_loop_that_logs_synchronously() -> None:
    """The measurement above can see blocking: a sync handler's write holds the loop."""
    gate = Gate(shut=True)

    async def main() -> None:
        with collector(gate, high_water=100) as c:
            handler = SyslogHandler(
                c.url("tcp"), app_name="aio-control", delivery="sync", timeout=0.5
            )
            log = logger_for(handler, "control")
            try:
                with Heartbeat() as beat:
                    for chunk in range(0, 40_000, 500):
                        for n in range(chunk, chunk + 500):
                            log.info("n=%d %s", n, PAD)
                        await asyncio.sleep(0)
                        if beat.longest >= 0.4:
                            break
            finally:
                handler.close(1.0)
            assert beat.longest >= 0.4  # the loop stood still for a write's timeout
            assert handler.stats["dropped"] >= 1

    run(main)


def test_records_arrive_over_udp_and_tcp_from_many_tasks() -> None:
    gate = Gate()

    async def main() -> None:
        with collector(gate) as c:
            for scheme in ("udp", "tcp"):
                async with AsyncSyslogHandler(c.url(scheme), app_name=f"aio-{scheme}") as handler:
                    log = logger_for(handler, scheme)

                    async def worker(task: int, log: logging.Logger = log) -> None:
                        for i in range(50):
                            log.warning("n=%d task=%d", task * 50 + i, task, extra={"msgid": "T"})
                            await asyncio.sleep(0)

                    await asyncio.gather(*(worker(t) for t in range(4)))
                    await handler.aflush(10.0)
                    await gate.wait(200 if scheme == "udp" else 400)
                assert handler.stats["sent"] == 200
            records = [r.message for r in gate.records if r.message]
            assert sorted(gate.numbers()[:200]) == sorted(gate.numbers()[200:]) == list(range(200))
            assert {(m.app_name, m.msgid, int(m.severity or 0)) for m in records} == {
                ("aio-udp", "T", 4),
                ("aio-tcp", "T", 4),
            }

    run(main)


def test_closed_handler_drops_without_raising_and_delivery_is_always_background() -> None:
    with pytest.raises(ValueError, match="background"):
        AsyncSyslogHandler("udp://127.0.0.1:9", delivery="sync")

    async def main() -> None:
        # a unix socket nobody listens on: a plain handler would write there in the caller
        handler = AsyncSyslogHandler("unix:///nonexistent/syslogkit-test.sock", delivery=None)
        log = logger_for(handler, "unix")
        for i in range(100):
            log.error("n=%d", i)
        assert "queued" in handler.stats  # the background queue's counters
        await handler.aclose(1.0)
        log.error("after close")
        stats = handler.stats
        assert stats["dropped_closed"] >= 1
        assert stats["sent"] == 0

    run(main)


def test_documented_example(tmp_path: Path) -> None:
    """docs/integrations.md's asyncio example, run as a program, delivers what it says."""
    gate = Gate()
    with collector(gate) as c:
        example = doc_examples(INTEGRATIONS)["asyncio"]
        assert run_example(example, "tcp", c, tmp_path / "asyncio") == ""
        deadline = time.monotonic() + 10.0
        while gate.count() < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # anything beyond the three would arrive within this
        messages = [r.message for r in gate.records]
    assert [(m.app_name, m.msgid, m.severity, m.msg) for m in messages if m] == [
        ("api", "REQ", Severity.INFO, f"request {n} done") for n in range(3)
    ]
