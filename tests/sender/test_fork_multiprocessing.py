"""No record lost when a forked or `multiprocessing` worker ends (issue 25).

A default `SyslogHandler("tcp://...")` (background delivery) configured in the parent; workers
log numbered records up to the last instant before they end, under every way a child ends: a
Process target's return or `sys.exit()` (fork: `os._exit()` after multiprocessing's finalizers;
spawn: `sys.exit`, atexit; forkserver: `os._exit()` again), `Process.terminate()` (SIGTERM: the
child still dies of it), a Pool worker's own exit (close + join) or its SIGTERM (`terminate()`,
what `with Pool()` does), a `ProcessPoolExecutor`'s shutdown, and `os.fork()` children ending
with `os._exit()` after `logging.shutdown()` or `flush()`, or with sync delivery. syslogkit's
own collector (in this process) must hold every record exactly once. Then the collector is
down: with `spool_dir` the records wait on disk and the next start delivers them; without it,
each child tells its count in one line.

Before the fix (fork, 4 Processes x 2,000 records): 6,109 to 7,181 of 8,000 arrived, nothing
said. Each case runs its app in a subprocess (it forks); about 1 to 4 s each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.collector import Capture
from support.delivery import refused_port
from support.process_models import assert_each_once, lost_counts, run_mp_app
from syslogkit.collector import CollectorThread

WORKERS = 4
PER_WORKER = 500
TOTAL = WORKERS * PER_WORKER


@pytest.fixture
def collector() -> Iterator[tuple[CollectorThread, Capture]]:
    sink = Capture()
    with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as running:
        yield running, sink


def config(address: str, method: str, model: str, **options: Any) -> dict[str, Any]:
    return {
        "address": address,
        "method": method,
        "model": model,
        "workers": WORKERS,
        "per_worker": PER_WORKER,
        "options": options,
    }


@pytest.mark.parametrize(
    ("method", "model"),
    [
        ("fork", "return"),
        ("fork", "sys_exit"),
        ("fork", "pool_close"),
        ("fork", "pool_terminate"),
        ("fork", "executor"),
        ("fork", "terminate"),
        ("spawn", "return"),
        ("spawn", "pool_terminate"),
        ("forkserver", "return"),
        ("forkserver", "pool_close"),
        ("forkserver", "pool_terminate"),
    ],
)
def test_every_record_of_a_multiprocessing_worker_arrives_once_however_it_ends(
    collector: tuple[CollectorThread, Capture], method: str, model: str
) -> None:
    running, sink = collector
    run_mp_app(config(running.url("tcp"), method, model))
    assert_each_once(sink, TOTAL)


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("fork_shutdown", {}),
        ("fork_flush", {}),
        ("fork_no_flush", {"delivery": "sync"}),
    ],
)
def test_an_os_fork_child_ending_with_os_exit_delivers_after_flush_or_with_sync_delivery(
    collector: tuple[CollectorThread, Capture], model: str, options: dict[str, Any]
) -> None:
    running, sink = collector
    run_mp_app(config(running.url("tcp"), "os.fork", model, **options))
    assert_each_once(sink, TOTAL)


@pytest.mark.parametrize(
    ("method", "model"),
    [("fork", "return"), ("fork", "pool_terminate"), ("forkserver", "return")],
)
def test_records_of_workers_ending_while_the_collector_is_down_wait_in_the_spool_for_the_next_start(
    tmp_path: Path, method: str, model: str
) -> None:
    spool = str(tmp_path / "spool")
    down = f"tcp://127.0.0.1:{refused_port()}"
    done = run_mp_app(config(down, method, model, spool_dir=spool))
    assert lost_counts(done.stderr) == [], done.stderr
    assert list((tmp_path / "spool").glob("*.seg"))
    sink = Capture()
    with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as running:
        run_mp_app(config(running.url("tcp"), "spawn", "replay", spool_dir=spool))
        assert_each_once(sink, TOTAL)


@pytest.mark.parametrize(
    ("method", "model"),
    [("fork", "return"), ("fork", "pool_terminate"), ("spawn", "return")],
)
def test_each_worker_ending_while_the_collector_is_down_tells_its_loss_in_one_line(
    method: str, model: str
) -> None:
    down = f"tcp://127.0.0.1:{refused_port()}"
    done = run_mp_app(config(down, method, model, shutdown_stall=0.5))
    assert lost_counts(done.stderr) == [PER_WORKER] * WORKERS, done.stderr
