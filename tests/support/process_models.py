"""Helpers of the process-model tests (tests/sender/test_fork_*.py, tests/interop/
test_process_models.py): run a program of `process_apps/` in a subprocess (they fork, pytest
must not), and check that a collector holds every numbered record exactly once.

Records carry `n=<number>` (`support.delivery.number_of`); `LOST_LINE` matches the one line a
delivery writes at close for what it could not deliver.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from support.collector import Capture
from support.delivery import number_of

APPS = Path(__file__).parent / "process_apps"
TESTS = Path(__file__).parent.parent
#: the line told at close for records not delivered, with their count
LOST_LINE = re.compile(r"syslogkit: at close, (\d+) records not delivered")


def app_env(**extra: str) -> dict[str, str]:
    """The environment of an app: tests/ importable (for `support.*` and the apps)."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_mp_app(config: dict[str, Any], timeout: float = 45.0) -> subprocess.CompletedProcess[str]:
    """Run process_apps/mp_app.py with `config`; fail the test when it fails, or when it has not
    ended within `timeout` s (under pytest's own 60: its whole session is killed then, so no
    worker is left behind)."""
    proc = subprocess.Popen(
        [sys.executable, str(APPS / "mp_app.py"), json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=app_env(),
        start_new_session=True,
    )
    err = stop(proc, 0, timeout)
    assert proc.returncode == 0, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", err)


def arrived_numbers(sink: Capture, total: int, timeout: float = 15.0) -> Counter[int | None]:
    """How often each number arrived, once `total` records did (or `timeout` passed), plus a
    short wait for duplicates."""
    sink.arrived(total, timeout)
    time.sleep(0.2)
    records = sink.arrived(0, 0)
    return Counter(number_of(r.raw) for r in records)


def assert_each_once(sink: Capture, total: int, timeout: float = 15.0) -> None:
    """The collector holds numbers 0 .. total - 1, each exactly once, and nothing else."""
    counts = arrived_numbers(sink, total, timeout)
    missing = [n for n in range(total) if counts[n] == 0]
    twice = sorted(n for n, c in counts.items() if c > 1)
    extra = sorted((n for n in counts if n is None or not 0 <= n < total), key=str)
    assert not missing and not twice and not extra, (
        f"{sum(counts.values())} arrived of {total}: {len(missing)} missing "
        f"(first {missing[:5]}), twice {twice[:5]}, unexpected {extra[:5]}"
    )


def lost_counts(stderr: str) -> list[int]:
    """The counts told at close, one per line that tells them."""
    return [int(m[1]) for m in LOST_LINE.finditer(stderr)]


# -- servers: gunicorn, uWSGI, Celery ------------------------------------------------------------


def wait_listening(port: int, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """Until something accepts on 127.0.0.1:`port`; fail when `proc` ends first or in time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"server exited with {proc.returncode}: {err[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing listens on {port} after {timeout} s")
        time.sleep(0.05)


def get_records(port: int, total: int, per_request: int, clients: int = 4) -> None:
    """GET /?start=..&count=.. so that records 0 .. total - 1 are logged, `clients` at once."""

    def fetch(start: int) -> None:
        url = f"http://127.0.0.1:{port}/?start={start}&count={min(per_request, total - start)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.status == 200

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(fetch, range(0, total, per_request)))


def stop(proc: subprocess.Popen[str], sig: int, timeout: float = 30.0) -> str:
    """Send `sig` (0: none, it was told otherwise), wait for the end; its stderr. After
    `timeout` s, kill its whole session (started with `start_new_session=True`: no worker is
    left behind) and fail."""
    if sig:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        raise AssertionError(f"did not end within {timeout} s: {err[-3000:]}") from None
    return err


def replay_spool(address: str, spool_dir: str) -> None:
    """The next start of an application with `spool_dir`: delivers what the spool holds."""
    config = {"address": address, "method": "spawn", "model": "replay", "workers": 0}
    run_mp_app({**config, "per_worker": 0, "options": {"spool_dir": spool_dir}})
