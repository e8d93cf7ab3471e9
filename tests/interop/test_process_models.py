"""Every record of a worker arrives once, under the servers that fork Python workers (issue 25):
gunicorn (sync, gthread, with and without `--preload`), uWSGI (with and without `lazy-apps`)
and Celery's prefork pool (redis as its broker). multiprocessing and os.fork() are in
tests/sender/test_fork_multiprocessing.py.

Each run logs numbered records across its workers (requests, or tasks), plus records logged
in the last instant before each worker ends (gunicorn's `worker_exit`, `uwsgi.atexit`, a Celery
task run by a child that exits after it), stops the server gracefully, and syslogkit's own
collector must hold every record exactly once. Then with the collector down: with
`spool_dir`, the next start delivers them; without it, each worker tells its count in one line.

The servers come from PyPI (the `test` extra) and redis-server from Debian (`.ci/run`); a
missing one skips the test, and fails it under CI=true. About 3 to 6 s per case.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.collector import Capture, wait_for
from support.delivery import refused_port
from support.peers import Need, free_port
from support.process_models import (
    APPS,
    TESTS,
    app_env,
    assert_each_once,
    get_records,
    lost_counts,
    replay_spool,
    stop,
    wait_listening,
)
from syslogkit.collector import CollectorThread

WORKERS = 4
REQUESTS = 2000  # records logged by requests, 100 per request
PER_REQUEST = 100
LAST_WORDS = 50  # records each worker logs in its last instant
TOTAL = REQUESTS + WORKERS * LAST_WORDS
FIRST_WORDS = 10  # records the uWSGI master logs when it loads the app (no lazy-apps)


@pytest.fixture
def collector() -> Iterator[tuple[CollectorThread, Capture]]:
    sink = Capture()
    with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as running:
        yield running, sink


def app_config(address: str, first_words: int = 0, **options: Any) -> str:
    """The app's config: records from requests, then each worker's last words, then the
    `first_words` logged by the process that imports the app (numbered from TOTAL on)."""
    last = {"last_words": LAST_WORDS, "last_base": REQUESTS}
    first = {"first_words": first_words, "first_base": TOTAL}
    return json.dumps({"address": address, "options": options, **last, **first})


# -- gunicorn --------------------------------------------------------------------------------------


def gunicorn(
    need: Need, port: int, worker: str, preload: bool, config: str
) -> subprocess.Popen[str]:
    need(importlib.util.find_spec("gunicorn") is not None, "gunicorn is not installed (test extra)")
    command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(WORKERS)]
    command += ["-k", worker, "-c", str(APPS / "gunicorn_conf.py"), "--chdir", str(APPS)]
    command += ["--threads", "4"] if worker == "gthread" else []
    command += ["--preload"] if preload else []
    command += ["--graceful-timeout", "20", "wsgi_app:application"]
    env = app_env(SYSLOGKIT_TEST_APP=config, PYTHONPATH=f"{APPS}:{app_env()['PYTHONPATH']}")
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_listening(port, proc)
    return proc


def run_gunicorn(need: Need, worker: str, preload: bool, address: str, **options: Any) -> str:
    """Serve the requests, stop gracefully (SIGTERM); gunicorn's stderr."""
    port = free_port()
    proc = gunicorn(need, port, worker, preload, app_config(address, **options))
    try:
        get_records(port, REQUESTS, PER_REQUEST)
    finally:
        err = stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err[-3000:]
    return err


GUNICORN = [("sync", True), ("gthread", True), ("sync", False)]


@pytest.mark.parametrize(("worker", "preload"), GUNICORN)
def test_gunicorn_workers_deliver_every_record_once_up_to_their_exit(
    collector: tuple[CollectorThread, Capture], need: Need, worker: str, preload: bool
) -> None:
    running, sink = collector
    run_gunicorn(need, worker, preload, running.url("tcp"))
    assert_each_once(sink, TOTAL)


def test_gunicorn_workers_spool_while_the_collector_is_down_for_the_next_start(
    need: Need, tmp_path: Path
) -> None:
    spool = str(tmp_path / "spool")
    err = run_gunicorn(need, "sync", True, f"tcp://127.0.0.1:{refused_port()}", spool_dir=spool)
    assert lost_counts(err) == [], err[-3000:]
    sink = Capture()
    with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as running:
        replay_spool(running.url("tcp"), spool)
        assert_each_once(sink, TOTAL)


def test_gunicorn_workers_tell_their_loss_in_one_line_each_while_the_collector_is_down(
    need: Need,
) -> None:
    down = f"tcp://127.0.0.1:{refused_port()}"
    err = run_gunicorn(need, "sync", True, down, shutdown_stall=0.5)
    counts = lost_counts(err)
    assert len(counts) == WORKERS and sum(counts) == TOTAL, err[-3000:]


# -- uWSGI -----------------------------------------------------------------------------------------


def uwsgi_path(need: Need) -> str:
    path = Path(sys.executable).with_name("uwsgi")
    need(path.exists(), "uwsgi is not installed (test extra; it builds with a C compiler)")
    return str(path)


def run_uwsgi(
    need: Need,
    tmp_path: Path,
    lazy: bool,
    address: str,
    stop_within: float = 30.0,
    **options: Any,
) -> tuple[str, int]:
    """Serve the requests once every worker has the app, then a graceful shutdown (`q` on the
    master FIFO) that must end within `stop_within` s; uWSGI's log (where the workers' stderr
    goes too) and the master's pid."""
    port = free_port()
    fifo, log = tmp_path / "master.fifo", tmp_path / "uwsgi.log"
    command = [uwsgi_path(need), "--http-socket", f"127.0.0.1:{port}", "--master"]
    command += ["--processes", str(WORKERS), "--enable-threads", "--need-app"]
    command += ["--wsgi-file", str(APPS / "wsgi_app.py"), "--master-fifo", str(fifo)]
    command += ["--lazy-apps"] if lazy else []
    command += ["--disable-logging", "--worker-reload-mercy", "20", "--logto", str(log)]
    env = app_env(SYSLOGKIT_TEST_APP=app_config(address, **options))
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # a shutdown while a lazy worker still loads the app hangs uWSGI: wait for all of them
        ready = WORKERS if lazy else 1
        wait_for(lambda: log.exists() and log.read_text().count(" ready in ") >= ready, 30)
        wait_listening(port, proc)
        get_records(port, REQUESTS, PER_REQUEST)
    finally:
        fifo.write_text("q")  # graceful shutdown: each worker finishes, then exits
        stop(proc, 0, stop_within)
    err = log.read_text()
    assert "goodbye to uWSGI" in err, err[-3000:]
    return err, proc.pid


@pytest.mark.parametrize("lazy", [False, True], ids=["preforked-app", "lazy-apps"])
def test_uwsgi_workers_deliver_every_record_once_up_to_their_exit(
    collector: tuple[CollectorThread, Capture], need: Need, tmp_path: Path, lazy: bool
) -> None:
    running, sink = collector
    _, master = run_uwsgi(need, tmp_path, lazy, running.url("tcp"))
    assert_each_once(sink, TOTAL)
    # uWSGI forks without Python's fork hooks: the handler still takes each worker's pid
    procids = {r.message.procid for r in sink.arrived(0, 0) if r.message is not None}
    assert len(procids) > 1 and str(master) not in procids, (master, procids)


@pytest.mark.parametrize("lazy", [False, True], ids=["preforked-app", "lazy-apps"])
def test_uwsgi_workers_with_a_spool_deliver_every_record_once_and_end_in_time(
    collector: tuple[CollectorThread, Capture], need: Need, tmp_path: Path, lazy: bool
) -> None:
    # with spool_dir the handler started its writer at once, without lazy-apps in the master:
    # uWSGI forks in C without the GIL, and a worker forked while that thread held it waited
    # for it for ever (a graceful stop lasts about a second: 10 s is a hang). The master logs
    # too (it ends without atexit: what it logs must not wait in its memory)
    running, sink = collector
    address, spool = running.url("tcp"), str(tmp_path / "spool")
    first = 0 if lazy else FIRST_WORDS
    err, _ = run_uwsgi(
        need, tmp_path, lazy, address, stop_within=10.0, first_words=first, spool_dir=spool
    )
    assert lost_counts(err) == [], err[-3000:]
    assert_each_once(sink, TOTAL + first)


@pytest.mark.parametrize("lazy", [False, True], ids=["preforked-app", "lazy-apps"])
def test_uwsgi_workers_spool_while_the_collector_is_down_for_the_next_start(
    need: Need, tmp_path: Path, lazy: bool
) -> None:
    spool = str(tmp_path / "spool")
    down = f"tcp://127.0.0.1:{refused_port()}"
    err, _ = run_uwsgi(need, tmp_path, lazy, down, stop_within=10.0, spool_dir=spool)
    assert lost_counts(err) == [], err[-3000:]
    sink = Capture()
    with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as running:
        replay_spool(running.url("tcp"), spool)
        assert_each_once(sink, TOTAL)


def test_uwsgi_workers_tell_their_loss_in_one_line_each_while_the_collector_is_down(
    need: Need, tmp_path: Path
) -> None:
    down = f"tcp://127.0.0.1:{refused_port()}"
    err, _ = run_uwsgi(need, tmp_path, False, down, shutdown_stall=0.5)
    counts = lost_counts(err)
    assert len(counts) == WORKERS and sum(counts) == TOTAL, err[-3000:]


# -- Celery (prefork) -----------------------------------------------------------------------------

TASKS = 20  # of 100 records each, one per child (--max-tasks-per-child 1)


@pytest.fixture
def redis(need: Need, tmp_path: Path) -> Iterator[str]:
    """A redis-server of its own on a loopback high port: the broker's URL."""
    server = shutil.which("redis-server")
    need(server is not None, "redis-server is not installed (apt-get install redis-server)")
    assert server is not None
    need(importlib.util.find_spec("celery") is not None, "celery is not installed (test extra)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_listening(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc, signal.SIGTERM)


def run_celery(broker: str, tmp_path: Path, address: str, **options: Any) -> str:
    """A prefork worker (4 children, each exiting after one task) runs the tasks, then a warm
    shutdown (SIGTERM) once every task's child has exited; the worker's stderr (its children's
    too). Not at the last task's end: billiard's warm shutdown stops reading results, and a
    child whose result was still in flight waits 30 s for it, with or without syslogkit
    (docs/handler.md, Celery prefork)."""
    done, exited = tmp_path / "done", tmp_path / "exited"
    done.mkdir()
    exited.mkdir()
    config = {"broker": broker, "address": address, "options": options}
    config |= {"done_dir": str(done), "exited_dir": str(exited)}
    env = app_env(SYSLOGKIT_TEST_APP=json.dumps(config), PYTHONPATH=f"{APPS}:{TESTS}")
    command = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork"]
    command += ["-c", str(WORKERS), "--max-tasks-per-child", "1", "-l", "WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(
        command,
        cwd=APPS,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        sent = subprocess.run(
            [sys.executable, str(APPS / "celery_app.py"), str(REQUESTS), str(REQUESTS // TASKS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sent.returncode == 0, sent.stderr
        wait_for(lambda: len(list(done.iterdir())) >= TASKS, 60, "every task done")
        wait_for(lambda: len(list(exited.iterdir())) >= TASKS, 30, "every task's child exited")
    finally:
        err = stop(worker, signal.SIGTERM)
    return err


def test_celery_prefork_children_deliver_every_record_once_up_to_their_exit(
    collector: tuple[CollectorThread, Capture], redis: str, tmp_path: Path
) -> None:
    running, sink = collector
    run_celery(redis, tmp_path, running.url("tcp"))
    assert_each_once(sink, REQUESTS)


def test_celery_prefork_children_spool_while_the_collector_is_down_for_the_next_start(
    redis: str, tmp_path: Path
) -> None:
    spool = str(tmp_path / "spool")
    err = run_celery(redis, tmp_path, f"tcp://127.0.0.1:{refused_port()}", spool_dir=spool)
    assert lost_counts(err) == [], err[-3000:]
    sink = Capture()
    with CollectorThread(["tcp://127.0.0.1:0"], [sink]) as running:
        replay_spool(running.url("tcp"), spool)
        assert_each_once(sink, REQUESTS)


def test_celery_prefork_children_tell_their_loss_in_one_line_each_while_the_collector_is_down(
    redis: str, tmp_path: Path
) -> None:
    down = f"tcp://127.0.0.1:{refused_port()}"
    err = run_celery(redis, tmp_path, down, shutdown_stall=0.5)
    assert lost_counts(err) == [REQUESTS // TASKS] * TASKS, err[-3000:]
