"""The spool with real processes and a real rsyslog (imrelp, no-loss ruleset).

An application (a subprocess) logs while the collector is down and exits; the records wait on
disk; when the collector is up again, the next run of the application replays them: all of
them, in order, none twice (RELP acknowledges each one, and a record leaves the spool only once
acknowledged). Several processes may share one spool directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from support.delivery import number_of
from support.peers import RsyslogFactory, RsyslogPeer

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

APP = """
import json, sys, time
sys.path.insert(0, {tests!r})
from support.delivery import payload
from syslogkit.transports.address import Address
from syslogkit.transports.backoff import Backoff
from syslogkit.delivery.background import BackgroundDelivery
from syslogkit.transports.relp import RelpTransport

port, spool_dir, tag, start, count, wait = (
    int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
    float(sys.argv[6]),
)
transport = RelpTransport(
    Address("relp", "127.0.0.1", port), timeout=5.0, backoff=Backoff(0.05, 0.5)
)
delivery = BackgroundDelivery(transport, queue_size=100_000, spool_dir=spool_dir)
for i in range(start, start + count):
    delivery.deliver(payload(i, tag))
# flush() returns at once while the collector is unreachable and all is on disk: keep asking
deadline = time.monotonic() + wait
while not (flushed := delivery.flush(max(deadline - time.monotonic(), 0.0))):
    if time.monotonic() >= deadline:
        break
    time.sleep(0.05)
delivery.close(5.0)
stats = delivery.stats.snapshot()
stats["flushed"] = flushed
print(json.dumps(stats))
"""


def run_app(
    port: int, spool: Path, tag: str, start: int, count: int, wait: float
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            APP.format(tests=TESTS),
            str(port),
            str(spool),
            tag,
            str(start),
            str(count),
            str(wait),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 45.0) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def arrivals(peer: RsyslogPeer) -> list[tuple[str, int | None]]:
    return [(r.get("msgid", ""), number_of(r.get("msg", ""))) for r in peer.records()]


def test_records_logged_while_the_collector_is_down_arrive_with_the_next_run(
    rsyslog: RsyslogFactory, tmp_path: Path
) -> None:
    peer = rsyslog(relp=True, no_loss=True)
    port = peer.relp_port
    peer.stop()  # the collector is down
    spool = tmp_path / "spool"
    n = 10_000
    first = finish(run_app(port, spool, "run1", 0, n, 0.5))
    assert first["spooled"] == n
    assert first["dropped"] == 0
    assert first["flushed"] is False
    assert list(spool.glob("*.seg"))
    assert peer.records() == []

    peer.start()  # the collector is back, on the same port
    second = finish(run_app(port, spool, "run2", n, 10, 30.0))
    assert second["flushed"] is True
    assert second["adopted"] == n
    got = arrivals(peer)
    numbers = [number for tag, number in got]
    assert numbers == list(range(n + 10))  # all, in order, none twice
    assert {tag for tag, number in got if number is not None and number < n} == {"run1"}
    assert second["acknowledged"] == n + 10
    assert second["replayed"] >= n
    assert not list(spool.glob("*.seg"))


def test_two_processes_sharing_a_spool_deliver_every_record_once(
    rsyslog: RsyslogFactory, tmp_path: Path
) -> None:
    peer = rsyslog(relp=True, no_loss=True)
    port = peer.relp_port
    peer.stop()
    spool = tmp_path / "spool"
    n = 5000
    # two processes log at the same time into one spool directory, collector down
    writers = [run_app(port, spool, tag, 0, n, 0.5) for tag in ("a", "b")]
    for proc in writers:
        assert finish(proc)["spooled"] == n
    peer.start()
    # two processes start at the same time, each adopting what the others left
    replayers = [run_app(port, spool, tag, 0, 0, 30.0) for tag in ("c", "d")]
    results = [finish(proc) for proc in replayers]
    assert sum(r.get("adopted", 0) for r in results) == 2 * n
    counts = Counter(arrivals(peer))
    assert set(counts) == {(tag, i) for tag in ("a", "b") for i in range(n)}
    assert set(counts.values()) == {1}  # every record exactly once
    for tag in ("a", "b"):  # and each process's records in order
        assert [i for t, i in arrivals(peer) if t == tag] == list(range(n))
    assert not list(spool.glob("*.seg"))


def test_two_live_processes_each_replay_their_own(rsyslog: RsyslogFactory, tmp_path: Path) -> None:
    """Both processes keep running while the collector comes back: each replays its own
    segments (a live owner's lock keeps the other away)."""
    peer = rsyslog(relp=True, no_loss=True)
    port = peer.relp_port
    peer.stop()
    spool = tmp_path / "spool"
    n = 3000
    procs = [run_app(port, spool, tag, 0, n, 25.0) for tag in ("a", "b")]
    # wait until both have moved everything to disk, then bring the collector back
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        owners = {p.name.split(".")[0] for p in spool.glob("*.seg")}
        if len(owners) >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    peer.start()
    results = [finish(proc) for proc in procs]
    assert all(r["flushed"] for r in results)
    counts = Counter(arrivals(peer))
    assert set(counts) == {(tag, i) for tag in ("a", "b") for i in range(n)}
    assert set(counts.values()) == {1}
