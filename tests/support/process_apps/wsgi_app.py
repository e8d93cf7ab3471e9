"""A WSGI application for the gunicorn and uWSGI tests (tests/interop/test_process_models.py).

Configured from `SYSLOGKIT_TEST_APP` (JSON: address, options, last_words, first_words) when
imported: in
the master with gunicorn's `--preload` and uWSGI without `lazy-apps` (the workers inherit the
handler through fork), in each worker otherwise; it then logs `first_words` records (numbered
from `first_base` on). `GET /?start=S&count=C` logs the records
numbered S .. S + C - 1. `last_words(k)` logs worker k's records of its last instant (numbered
from `last_base` on), from gunicorn's `worker_exit` hook or uWSGI's `uwsgi.atexit`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from syslogkit import SyslogHandler

CONFIG: dict[str, Any] = json.loads(os.environ["SYSLOGKIT_TEST_APP"])
LOG = logging.getLogger("app")
LOG.setLevel(logging.INFO)
LOG.propagate = False
LOG.addHandler(SyslogHandler(CONFIG["address"], **CONFIG.get("options", {})))
FIRST_BASE = CONFIG.get("first_base", 0)
for _n in range(FIRST_BASE, FIRST_BASE + CONFIG.get("first_words", 0)):
    LOG.warning("import n=%d", _n)


def application(
    environ: dict[str, Any], start_response: Callable[[str, list[tuple[str, str]]], Any]
) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    start, count = int(query["start"][0]), int(query["count"][0])
    for n in range(start, start + count):
        LOG.warning("req n=%d", n)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]


def last_words(k: int) -> None:
    """Worker k (1..workers) ends: its records of the last instant."""
    per = CONFIG["last_words"]
    base = CONFIG["last_base"] + (k - 1) * per
    for n in range(base, base + per):
        LOG.warning("exit n=%d", n)


try:
    import uwsgi  # type: ignore[import-not-found]  # only inside uWSGI
except ImportError:
    pass
else:
    uwsgi.atexit = lambda: last_words(uwsgi.worker_id())
