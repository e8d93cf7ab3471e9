"""gunicorn settings of the process-model tests: each worker's last records in `worker_exit`."""

from __future__ import annotations

from typing import Any


def worker_exit(server: Any, worker: Any) -> None:
    import wsgi_app  # already imported (preload, or by this worker)

    wsgi_app.last_words(worker.age)
