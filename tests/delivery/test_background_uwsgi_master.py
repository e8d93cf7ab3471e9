"""BackgroundDelivery where uWSGI forks its workers in C without taking the GIL first (its
master, the application loaded there): no writer thread may run, records are written inline by
`flush` and `close`. The hang itself (a worker waiting for a GIL held by the master's writer at
the fork) is proven under the real uWSGI in tests/interop/test_process_models.py; here a
stand-in `uwsgi` module tells the delivery which process it runs in.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from support.delivery import TIMEOUT, Sink, numbered, refused_port, tcp_transport, wait_for
from syslogkit.delivery import base
from syslogkit.delivery.background import BackgroundDelivery
from syslogkit.delivery.spool import Spool
from syslogkit.transports.address import Address
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.base import TransportError
from syslogkit.transports.stream import TCPTransport


def pretend_uwsgi(monkeypatch: pytest.MonkeyPatch, master_pid: int, **opt: bool) -> None:
    """This process runs under uWSGI, whose master has `master_pid`, with options `opt`."""
    uwsgi = SimpleNamespace(masterpid=lambda: master_pid, opt=dict(opt))
    monkeypatch.setitem(sys.modules, "uwsgi", uwsgi)
    monkeypatch.setattr(base, "_uwsgi_chained", True)  # no post_fork_hook on the stand-in


def writers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "syslogkit-writer"]


def test_a_uwsgi_master_runs_no_writer_even_with_a_spool_and_writes_each_record_inline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pretend_uwsgi(monkeypatch, os.getpid())
    before = writers()
    with Sink() as sink:
        delivery = BackgroundDelivery(tcp_transport(sink.port), spool_dir=tmp_path)
        for n in range(20):
            delivery.deliver(numbered(n))
            assert wait_for(lambda want=n + 1: sink.count() == want, 2.0)  # written, no flush
        assert writers() == before  # not at construction (spool), nor at the first record
        delivery.close(5.0)
        assert sink.numbers() == list(range(20))
        assert writers() == before
    assert delivery.stats.snapshot()["dropped"] == 0


@pytest.mark.parametrize("spool", [True, False], ids=["spool", "no-spool"])
def test_a_uwsgi_master_keeps_nothing_in_memory_while_the_collector_is_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spool: bool
) -> None:
    # a uWSGI master ends without atexit: a record held in its queue would vanish untold
    pretend_uwsgi(monkeypatch, os.getpid())
    spool_dir = tmp_path if spool else None
    delivery = BackgroundDelivery(tcp_transport(refused_port()), spool_dir=spool_dir)
    delivery._report = lambda exc, record: None  # the one-line notice is not under test
    for n in range(5):
        delivery.deliver(numbered(n))
    stats = delivery.stats.snapshot()
    assert not delivery._queue
    if spool:
        assert stats["spooled"] == 5 and stats["dropped"] == 0
    else:
        assert stats["dropped"] == 5 and stats["dropped_unreachable"] == 5, stats
    delivery.close(1.0)


@pytest.mark.parametrize(
    ("in_master", "opt"),
    [(False, {}), (True, {"py-call-uwsgi-fork-hooks": True})],
    ids=["worker", "master-with-fork-hooks"],
)
def test_a_uwsgi_worker_or_a_master_that_takes_the_gil_to_fork_starts_its_writer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, in_master: bool, opt: dict[str, bool]
) -> None:
    pretend_uwsgi(monkeypatch, os.getpid() if in_master else os.getpid() + 1, **opt)
    with Sink() as sink:
        delivery = BackgroundDelivery(tcp_transport(sink.port), spool_dir=tmp_path)
        thread = delivery._thread
        assert thread is not None and thread.is_alive()  # at once: it replays the spool
        delivery.close(5.0)


def test_a_uwsgi_master_leaves_what_an_earlier_run_spooled_to_its_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    earlier = Spool(tmp_path)
    earlier.append([numbered(n) for n in range(3)])
    earlier.close()  # its records stay on disk, its lock free
    pretend_uwsgi(monkeypatch, os.getpid())
    with Sink() as sink:
        delivery = BackgroundDelivery(tcp_transport(sink.port), spool_dir=tmp_path)
        delivery.deliver(numbered(3))
        assert wait_for(lambda: sink.count() == 1, 2.0)
        assert sink.numbers() == [3]
        worker = Spool(tmp_path)
        assert worker.adopt() == 3  # the master holds no lock on them
        worker.close()
        delivery.close(2.0)


class FailsFirstWrite(TCPTransport):
    """A TCP transport whose first write fails as a reset connection would."""

    failed = False

    def write(self, data: bytes) -> None:
        if not self.failed:
            self.failed = True
            raise TransportError("closed", f"{self.address}: reset")
        super().write(data)


def test_a_uwsgi_master_spools_what_a_broken_connection_held(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pretend_uwsgi(monkeypatch, os.getpid())
    with Sink() as sink:
        address = Address("tcp", "127.0.0.1", sink.port)
        transport = FailsFirstWrite(address, timeout=TIMEOUT, backoff=Backoff(0.05, 0.5))
        delivery = BackgroundDelivery(transport, spool_dir=tmp_path)
        delivery.deliver(numbered(0))
        assert not delivery._queue and not delivery._retry  # on disk, not in memory
        assert delivery.stats.snapshot()["spooled"] == 1
        time.sleep(0.1)  # the backoff after the break
        delivery.deliver(numbered(1))
        assert wait_for(lambda: sink.count() == 2, 2.0)
        assert sink.numbers() == [0, 1]
        delivery.close(2.0)
