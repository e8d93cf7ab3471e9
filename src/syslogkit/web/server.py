"""Run the web application with uvicorn: in the foreground (`syslogkit web`) or in a thread
(tests, `syslogkit demo --web`).

The listening rule (`security.check_exposure`) is applied here, before anything listens.
Shutdown does not wait for open event streams longer than `GRACE` seconds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn

from .app import create_app
from .security import check_exposure

__all__ = ["GRACE", "WebServer"]

GRACE = 2


class WebServer:
    """`syslogkit web` on `host:port` over the store at `db` (port 0: any free port)."""

    def __init__(
        self, db: str | Path, host: str = "127.0.0.1", port: int = 8514, token: str | None = None
    ) -> None:
        check_exposure(host, token)
        self.host = host
        self.app = create_app(db, token=token)
        config = uvicorn.Config(
            self.app,
            host=host.strip("[]"),
            port=port,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=GRACE,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("the web server is not listening")

    @property
    def url(self) -> str:
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM."""
        self.server.run()

    def start(self, timeout: float = 10.0) -> WebServer:
        """Serve from a thread; returns once listening (`RuntimeError` if it could not)."""
        self._thread = threading.Thread(target=self.server.run, name="syslogkit-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not start on {self.host}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(GRACE + 5)

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
