"""Background delivery against a real rsyslog: plain TCP killed mid-stream, and the no-loss
rules of issue 11 with the handler's defaults over RELP (back-pressure, restart, outage,
SIGSTOP, overload shedding, spool overflow, exit).

Plain TCP killed with SIGKILL mid-stream:

Plain TCP has no acknowledgements: records rsyslog's kernel took but rsyslog never wrote are
gone, and the sender cannot know which. The claim tested is the honest bound: every record
that went missing (counted here by number) was counted by the sender as `maybe_lost`, records
the kernel had not handed over were written again, and logged == delivered + dropped + lost.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from support.delivery import (
    deliver_killing_the_peer_midway,
    first_arrivals,
    number_of,
    numbered,
    refused_port,
    tcp_transport,
    wait_for,
    writer_frames,
)
from support.peers import RsyslogFactory, RsyslogPeer
from syslogkit import SyslogHandler
from syslogkit.delivery.background import BackgroundDelivery

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tcp_20000_records_across_sigkill_lost_records_are_within_maybe_lost(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(tcp=True, no_loss=True)
    delivery = BackgroundDelivery(tcp_transport(peer.tcp_port), queue_size=50_000)
    n = 20_000
    deliver_killing_the_peer_midway(
        delivery, peer, numbered, n, progress="sent", stalled="the writer sent nothing"
    )
    assert delivery.flush(40.0), delivery.stats.snapshot()
    delivery.close(5.0)
    stats = delivery.stats.snapshot()
    # rsyslog writes what it read; give it a moment to finish the file
    time.sleep(0.5)
    order, dupes = first_arrivals(number_of(r.get("msg", "")) for r in peer.records())
    delivered = len(order)
    lost = n - delivered - stats["dropped"]
    print(
        f"TCP kill: delivered {delivered}, lost {lost}, maybe_lost {stats['maybe_lost']},"
        f" resent {stats['resent']}, duplicates {dupes}"
    )
    assert stats["reconnects"] >= 1
    assert order == sorted(order)  # in order of first arrival
    assert 0 <= lost <= stats["maybe_lost"]
    assert n == delivered + stats["dropped"] + lost
    assert dupes <= stats["resent"]


# -- issue 11: no silent loss with the handler's defaults, against a real rsyslog imrelp --------


def _relp_handler(port: int, **options: Any) -> tuple[SyslogHandler, logging.Logger]:
    handler = SyslogHandler(f"relp://127.0.0.1:{port}", **options)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"issue11-{port}-{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return handler, logger


def _numbers(peer: RsyslogPeer) -> tuple[list[int], int]:
    return first_arrivals(number_of(r.get("msg", "")) for r in peer.records())


def test_relp_defaults_20000_records_in_a_tight_loop_all_arrive_in_order(
    rsyslog: RsyslogFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    peer = rsyslog(relp=True, no_loss=True)
    handler, logger = _relp_handler(peer.relp_port)
    n = 20_000
    for i in range(n):
        logger.info("n=%d", i)
    handler.close()  # as logging.shutdown(): waits while the writer makes progress
    stats = handler.stats
    peer.messages(n, timeout=20.0)
    order, _ = _numbers(peer)
    assert order == list(range(n)), stats
    assert stats["dropped"] == 0 and stats["acknowledged"] == n
    assert "syslogkit" not in capfd.readouterr().err


def test_relp_defaults_sigkill_and_restart_mid_burst_lose_nothing_and_print_nothing(
    rsyslog: RsyslogFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    """All records arrive (duplicates counted as `resent`); no call waited much more than
    `block_timeout` (2 s); the restart is counted, not printed."""
    peer = rsyslog(relp=True, no_loss=True)
    handler, logger = _relp_handler(peer.relp_port)
    n = 20_000
    longest = 0.0
    restarter: threading.Thread | None = None
    for i in range(n):
        start = time.monotonic()
        logger.info("n=%d", i)
        longest = max(longest, time.monotonic() - start)
        if i == n // 3:
            assert wait_for(lambda: handler.stats["acknowledged"] > 1000, timeout=10.0)
            peer.kill(signal.SIGKILL)

            def restart() -> None:
                time.sleep(1.0)
                peer.start()

            restarter = threading.Thread(target=restart)
            restarter.start()
    assert restarter is not None
    restarter.join(30.0)
    handler.close()
    stats = handler.stats
    peer.messages(n, timeout=20.0)
    order, dupes = _numbers(peer)
    assert order == list(range(n)), stats
    assert stats["dropped"] == 0 and stats["reconnects"] >= 1
    assert dupes <= stats["resent"]
    assert longest < 3 * 2.0 + 1.0, longest  # block_timeout 2 s, bounded generously
    err = capfd.readouterr().err
    assert "Logging error" not in err and "syslogkit" not in err, err


def test_nothing_listening_calls_do_not_wait_counts_are_exact_and_one_line_is_printed(
    capfd: pytest.CaptureFixture[str],
) -> None:
    handler, logger = _relp_handler(refused_port())
    logger.info("first")
    # the writer has seen the outage (the first connect failed)
    assert wait_for(lambda: handler.stats["errors"] >= 1, timeout=10.0)
    n = 20_000  # twice the default queue: the second half cannot be kept
    longest = 0.0
    for i in range(n):
        start = time.monotonic()
        logger.info("n=%d", i)
        longest = max(longest, time.monotonic() - start)
    assert longest < 2.0, longest  # no call waited a block_timeout (2 s): none waited at all
    handler.close()
    stats = handler.stats
    assert stats["sent"] == 0
    assert stats["dropped"] == n + 1  # exact: every record logged is counted once
    by_reason = ("dropped_overflow", "dropped_shed", "dropped_unreachable")
    assert sum(stats.get(key, 0) for key in by_reason) == n + 1
    err = capfd.readouterr().err
    assert "Logging error" not in err  # the refused connect is one line, not a traceback
    exit_lines = [line for line in err.splitlines() if line.startswith("syslogkit: at close")]
    assert len(exit_lines) == 1, err
    assert f"{stats['dropped_unreachable']} records not delivered" in exit_lines[0]
    assert f"dropped {n + 1} in all" in exit_lines[0]  # the final total, with its reasons
    assert "spool_dir=" in exit_lines[0] and "relp://127.0.0.1:" in exit_lines[0]
    # the refused connect, the first drop (rate limited), the final count
    assert len([line for line in err.splitlines() if line.startswith("syslogkit:")]) <= 3


def test_sigstop_calls_wait_at_most_once_then_not_and_sigcont_resumes(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(relp=True, no_loss=True)
    handler, logger = _relp_handler(peer.relp_port, queue_size=1000)
    logger.warning("before")
    assert wait_for(lambda: handler.stats["acknowledged"] == 1, timeout=10.0)
    peer.kill(signal.SIGSTOP)
    try:
        waits = []
        for i in range(5000):
            start = time.monotonic()
            logger.warning("n=%d", i)
            took = time.monotonic() - start
            if took > 0.5:
                waits.append(took)
        # stalled: one call waited (bounded), then the calls stopped waiting
        assert 1 <= len(waits) <= 2, waits
        assert max(waits) < 3 * 2.0 + 1.0, waits
    finally:
        peer.kill(signal.SIGCONT)
    assert wait_for(lambda: handler.stats["acknowledged"] >= 1000, timeout=30.0), handler.stats
    logger.warning("after")
    handler.close()
    assert any(r.get("msg") == "after" for r in peer.messages(1002, timeout=20.0))
    stats = handler.stats
    assert stats["acknowledged"] + stats["dropped"] >= 5002 - stats["maybe_lost"]


def test_tcp_sigstop_with_a_spool_drops_nothing_and_everything_arrives_after_sigcont(
    rsyslog: RsyslogFactory, tmp_path: Path
) -> None:
    """Plain TCP to a SIGSTOPped rsyslog: the kernel buffers fill and the writer sticks in a
    write (then times out, reconnects into the listen backlog and sticks again). The calls
    move the full queue to the spool themselves: nothing is dropped, no call waits much more
    than `block_timeout`; after SIGCONT every record arrives (duplicates counted as re-sends
    or `maybe_lost`, the order across the stalled connections is rsyslog's)."""
    peer = rsyslog(tcp=True, no_loss=True)
    block = 0.5
    delivery = BackgroundDelivery(
        tcp_transport(peer.tcp_port, timeout=1.0),
        queue_size=500,
        block_timeout=block,
        spool_dir=tmp_path / "spool",
    )
    delivery.deliver(numbered(0))
    peer.messages(1, timeout=10.0)
    peer.kill(signal.SIGSTOP)
    try:
        longest = 0.0
        n = 1
        # 20k records of ~0.5 kB fill the kernel buffers at once; then go on logging until
        # the writer's write timed out, it reconnected (into the listen backlog), and 0.5 s
        # more, by which time it is stuck in a write again
        deadline = time.monotonic() + 20.0
        until = deadline
        while n < 20_000 or time.monotonic() < until:
            assert time.monotonic() < deadline, delivery.stats.snapshot()
            start = time.monotonic()
            delivery.deliver(numbered(n, pad=400))
            longest = max(longest, time.monotonic() - start)
            n += 1
            if n > 20_000:
                if until == deadline and delivery.stats.snapshot()["reconnects"] >= 1:
                    until = time.monotonic() + 0.5
                time.sleep(0.002)
        assert wait_for(lambda: "_send" in writer_frames(delivery))  # stuck in a write again
        stats = delivery.stats.snapshot()
        assert stats["dropped"] == 0, stats
        assert stats["spooled"] > 0 and stats["reconnects"] >= 1, stats
        assert longest < 3 * block + 1.0, longest
    finally:
        peer.kill(signal.SIGCONT)
    assert delivery.flush(60.0), delivery.stats.snapshot()
    delivery.close(5.0)
    stats = delivery.stats.snapshot()
    peer.messages(n, timeout=30.0)
    assert wait_for(lambda: set(range(n)) <= set(_numbers(peer)[0]), timeout=20.0), stats
    assert stats["dropped"] == 0 and stats["queued"] == n, stats


def test_overload_with_mixed_severities_keeps_every_warning_and_sheds_info_first(
    rsyslog: RsyslogFactory,
) -> None:
    """The caller may not wait (`block_timeout=0`) and logs faster than RELP delivers."""
    peer = rsyslog(relp=True, no_loss=True)
    handler, logger = _relp_handler(peer.relp_port, queue_size=5000, block_timeout=0)
    n = 40_000
    for i in range(n):
        if i % 100 == 0:
            logger.warning("n=%d", i)
        else:
            logger.info("n=%d", i)
    handler.close()
    stats = handler.stats
    delivered = stats["acknowledged"]
    peer.messages(delivered, timeout=20.0)
    order, _ = _numbers(peer)
    assert set(range(0, n, 100)) <= set(order), "a WARNING was lost"
    assert order == sorted(order)
    assert stats["dropped_shed"] > 0 and stats["dropped"] == stats["dropped_shed"]
    assert delivered + stats["dropped"] == n


def test_a_spool_takes_the_overflow_nothing_is_dropped_and_order_holds(
    rsyslog: RsyslogFactory, tmp_path: Path
) -> None:
    peer = rsyslog(relp=True, no_loss=True)
    handler, logger = _relp_handler(
        peer.relp_port, queue_size=500, spool_dir=str(tmp_path / "spool")
    )
    n = 20_000
    for i in range(n):
        logger.info("n=%d", i)
    handler.close()
    stats = handler.stats
    peer.messages(n, timeout=30.0)
    order, _ = _numbers(peer)
    assert order == list(range(n)), stats
    assert stats["dropped"] == 0 and stats["spooled"] > 0


EXIT_APP = """
import logging, sys
sys.path.insert(0, {src!r})
from syslogkit import SyslogHandler
handler = SyslogHandler(sys.argv[1], queue_size=100_000)
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.INFO)
for i in range(int(sys.argv[2])):
    logging.info("n=%d", i)
# no close(): logging.shutdown() at exit must deliver what is queued, or say what is not
"""


def _exit_app(url: str, n: int) -> subprocess.CompletedProcess[str]:
    src = os.path.join(os.path.dirname(TESTS_DIR), "src")
    return subprocess.run(
        [sys.executable, "-c", EXIT_APP.format(src=src), url, str(n)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_exit_with_records_queued_delivers_them_all_before_exit(rsyslog: RsyslogFactory) -> None:
    peer = rsyslog(relp=True, no_loss=True)
    n = 30_000
    result = _exit_app(f"relp://127.0.0.1:{peer.relp_port}", n)
    assert result.returncode == 0, result.stderr
    order, _ = _numbers(peer)
    assert order == list(range(n)), result.stderr
    assert "syslogkit" not in result.stderr


def test_exit_with_the_collector_gone_prints_one_line_with_the_exact_count() -> None:
    result = _exit_app(f"relp://127.0.0.1:{refused_port()}", 500)
    assert result.returncode == 0
    lines = [line for line in result.stderr.splitlines() if "at close" in line]
    assert len(lines) == 1, result.stderr
    assert "500 records not delivered" in lines[0] and "spool_dir=" in lines[0]
