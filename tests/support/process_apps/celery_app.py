"""A Celery application for the prefork tests (tests/interop/test_process_models.py).

Configured from `SYSLOGKIT_TEST_APP` (JSON: broker, address, options, done_dir, exited_dir)
when imported (in the worker's main process; its prefork children inherit the handler). The
task logs records numbered start .. start + count - 1, then leaves a file in `done_dir`. Run
with `--max-tasks-per-child 1`, each child exits right after its task: its records are those
of the last instant before its exit. Each child leaves a file named by its pid in `exited_dir`
as it exits (in `worker_process_shutdown`, before syslogkit's own close there): billiard sends
that signal only once the main process has read the child's result (or after 30 s), so a
warm shutdown begun after these files never catches a result in flight (which a shutting-down
main process may leave unread: the child then waits 30 s, with or without syslogkit; see
docs/handler.md, Celery prefork).
`python celery_app.py TOTAL PER_TASK` sends the tasks.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown

from syslogkit import SyslogHandler

CONFIG: dict[str, Any] = json.loads(os.environ["SYSLOGKIT_TEST_APP"])
app = Celery("syslogkit_test", broker=CONFIG["broker"])
app.conf.update(
    worker_hijack_root_logger=False,  # Celery would remove the application's root handlers
    worker_redirect_stdouts=False,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
LOG = logging.getLogger("app")
LOG.setLevel(logging.INFO)
LOG.propagate = False
LOG.addHandler(SyslogHandler(CONFIG["address"], **CONFIG.get("options", {})))


@app.task(name="log_numbers")
def log_numbers(start: int, count: int) -> None:
    for n in range(start, start + count):
        LOG.warning("task n=%d", n)
    (Path(CONFIG["done_dir"]) / f"{start}.done").touch()


@worker_process_shutdown.connect
def leave_exited_file(pid: int, **_: Any) -> None:
    (Path(CONFIG["exited_dir"]) / str(pid)).touch()


if __name__ == "__main__":
    total, per_task = int(sys.argv[1]), int(sys.argv[2])
    for start in range(0, total, per_task):
        log_numbers.delay(start, min(per_task, total - start))
