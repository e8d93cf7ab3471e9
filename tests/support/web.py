"""Helpers for the web tests: a collector and `syslogkit web` over its store, real syslog into it,
plain HTTP requests, the Chromium that Playwright drives, and `Watched`: a page and what it did
that a page over hostile logs must never do (dialogs, console errors, script errors).

`WebStack` runs a `CollectorThread` (TCP on a free loopback port, SQLite store) and a
`WebServer` over the same store (opened read-only), both on loopback. `line()` builds an RFC 5424
message stamped now. `get()` sends one request with http.client, path as given (no
normalisation: `..` reaches the server as written). `chromium()` finds Debian's real Chromium
binary (the `chromium` in PATH is a shell wrapper), or None.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from support.collector import feed, wait_for
from syslogkit.collector import CollectorThread, SQLiteSink, Store

__all__ = ["Watched", "WebStack", "chromium", "get", "line"]


def chromium() -> str | None:
    """The path of the Chromium binary Playwright can launch, or None."""
    candidates = ["/usr/lib/chromium/chromium"]
    if shutil.which("dpkg"):
        listed = subprocess.run(
            ["dpkg", "-L", "chromium"], capture_output=True, text=True, check=False
        ).stdout
        candidates = [p for p in listed.splitlines() if p.endswith("/chromium")] + candidates
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file() and path.stat().st_mode & 0o111 and "/lib/" in candidate:
            return str(path)
    return None


def line(
    text: str,
    *,
    severity: int = 6,
    facility: int = 16,
    host: str = "web1",
    app: str = "shop",
    procid: str = "42",
    msgid: str = "-",
    sd: str = "-",
    when: float | None = None,
) -> bytes:
    """An RFC 5424 message stamped `when` (default now)."""
    stamp = datetime.fromtimestamp(time.time() if when is None else when, timezone.utc)
    pri = facility * 8 + severity
    ts = stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return f"<{pri}>1 {ts} {host} {app} {procid} {msgid} {sd} {text}".encode()


def get(
    url: str, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One GET of `path` (sent as written) on the server at `url`: status, headers, body."""
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


class WebStack:
    """A collector storing into `db`, and the web server over it (token optional)."""

    def __init__(self, directory: Path, *, token: str | None = None) -> None:
        from syslogkit.web import WebServer

        self.db = directory / "syslog.db"
        self.collector = CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(self.db)])
        self.collector.start()
        self.web = WebServer(self.db, "127.0.0.1", 0, token=token)
        self.web.start()

    @property
    def url(self) -> str:
        return self.web.url

    def count(self) -> int:
        store = Store(self.db, readonly=True)
        try:
            return store.count()
        finally:
            store.close()

    def send(self, *payloads: bytes) -> None:
        """Send over TCP, and wait until the store holds them."""
        before = self.count()
        feed(self.collector.port("tcp"), list(payloads))
        wait_for(lambda: self.count() >= before + len(payloads), 10.0, f"{len(payloads)} stored")

    def stop(self) -> None:
        self.web.stop()
        self.collector.stop()

    def __enter__(self) -> WebStack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Watched:
    """A Playwright page, and what it did that a page over hostile logs must never do."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.incidents: list[str] = []
        self.allowed: list[re.Pattern[str]] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.incidents.append(f"page error: {error}"))

    def _dialog(self, dialog: Any) -> None:
        self.incidents.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning") and not any(
            p.search(message.text) for p in self.allowed
        ):
            self.incidents.append(f"console {message.type}: {message.text}")

    def allow_console(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))
