"""Workers that log numbered records and end, under every way `multiprocessing` and `os.fork()`
end a child; run by tests/sender/test_fork_multiprocessing.py as a subprocess (it forks).

`python mp_app.py CONFIG_JSON`, CONFIG: address, method (fork, spawn, forkserver, os.fork),
model (see `MODELS`), workers, per_worker, options (SyslogHandler keywords). Worker k logs
"w<k> n=<number>" for number k * per_worker .. (k + 1) * per_worker - 1, the last one in the
last instant before it ends. The handler is configured in the parent (fork children inherit
it); spawn and forkserver children configure the same one themselves.

`model` "replay": a next start of the application with the same `spool_dir` (delivers what
the spool holds, then exits).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from syslogkit import SyslogHandler

LOG = logging.getLogger("app")


def configure(config: dict[str, Any]) -> SyslogHandler:
    """The root logger's SyslogHandler (made once per process that does not inherit it)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, SyslogHandler):
            return handler
    handler = SyslogHandler(config["address"], **config.get("options", {}))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def log_numbers(config: dict[str, Any], k: int) -> int:
    """Worker k's records, up to the last instant before it ends."""
    configure(config)
    per = config["per_worker"]
    for n in range(k * per, (k + 1) * per):
        LOG.warning("w%d n=%d", k, n)
    return k


def ends_with_sys_exit(config: dict[str, Any], k: int) -> None:
    log_numbers(config, k)
    sys.exit(0)


def processes(config: dict[str, Any], target: Callable[..., Any]) -> None:
    ctx = multiprocessing.get_context(config["method"])
    children = [ctx.Process(target=target, args=(config, k)) for k in range(config["workers"])]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0, child.exitcode


def logs_then_waits(config: dict[str, Any], k: int, logged: Any) -> None:
    log_numbers(config, k)
    logged.release()
    time.sleep(60)  # until terminate()


def terminated(config: dict[str, Any]) -> None:
    """Processes terminated (SIGTERM) right after their last record: they still die of
    SIGTERM (the exit status the parent sees is unchanged)."""
    ctx = multiprocessing.get_context(config["method"])
    logged = ctx.Semaphore(0)
    workers = config["workers"]
    children = [
        ctx.Process(target=logs_then_waits, args=(config, k, logged)) for k in range(workers)
    ]
    for child in children:
        child.start()
    for _ in children:
        assert logged.acquire(timeout=60)
    for child in children:
        child.terminate()
    for child in children:
        child.join(60)
        assert child.exitcode == -signal.SIGTERM, child.exitcode


def pool(config: dict[str, Any], *, terminate: bool) -> None:
    """A Pool: workers end on close() + join() (their own exit), or on terminate() (SIGTERM:
    what `with Pool() as p:` does)."""
    ctx = multiprocessing.get_context(config["method"])
    workers = config["workers"]
    p = ctx.Pool(workers)
    try:
        tasks = [(config, k) for k in range(workers)]
        assert sorted(p.starmap(log_numbers, tasks)) == list(range(workers))
    finally:
        if terminate:
            p.terminate()
        else:
            p.close()
        p.join()


def executor(config: dict[str, Any]) -> None:
    """A ProcessPoolExecutor: its workers end when it shuts down."""
    ctx = multiprocessing.get_context(config["method"])
    workers = config["workers"]
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        assert sorted(pool.map(log_numbers, [config] * workers, range(workers))) == list(
            range(workers)
        )


def os_fork(config: dict[str, Any], *, end: Callable[[], None]) -> None:
    """`os.fork()` children that end with `os._exit()` after `end()`."""
    pids = []
    for k in range(config["workers"]):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                log_numbers(config, k)
                end()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def replay(config: dict[str, Any]) -> None:
    """The next start: the spool is replayed; wait until it is delivered."""
    handler = configure(config)
    handler.flush(30.0)


MODELS: dict[str, Callable[[dict[str, Any]], None]] = {
    "return": lambda c: processes(c, log_numbers),
    "sys_exit": lambda c: processes(c, ends_with_sys_exit),
    "pool_close": lambda c: pool(c, terminate=False),
    "pool_terminate": lambda c: pool(c, terminate=True),
    "executor": executor,
    "terminate": terminated,
    "fork_shutdown": lambda c: os_fork(c, end=logging.shutdown),
    "fork_flush": lambda c: os_fork(c, end=lambda: _root_syslog().flush()),
    "fork_no_flush": lambda c: os_fork(c, end=lambda: None),
    "replay": replay,
}


def _root_syslog() -> SyslogHandler:
    return next(h for h in logging.getLogger().handlers if isinstance(h, SyslogHandler))


def main() -> None:
    config = json.loads(sys.argv[1])
    if config["method"] in ("fork", "os.fork"):
        configure(config)  # in the parent: the children inherit it
    MODELS[config["model"]](config)


if __name__ == "__main__":
    main()
