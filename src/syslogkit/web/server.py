"""Run the web application with uvicorn: in the foreground (`syslogkit web`) or in a thread
(tests, `syslogkit demo --web`).

The listening rule (`security.check_exposure`) is applied here, before anything listens.
Shutdown does not wait for open event streams longer than `GRACE` seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn

from .app import create_app
from .security import check_exposure

__all__ = ["GRACE", "WebServer"]

GRACE = 2


class WebServer:
    """`syslogkit web` on `host:port` over the store at `db` (port 0: any free port).

    The listening socket is bound here, so a taken port is an `OSError` from the constructor,
    and `port` is known before serving starts.
    """

    def __init__(
        self, db: str | Path, host: str = "127.0.0.1", port: int = 8514, token: str | None = None
    ) -> None:
        check_exposure(host, token)
        self.host = host.strip("[]")
        self.app = create_app(db, token=token)
        self.socket = _listen(self.host, port)
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
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
        return int(self.socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self, timeout: float = 10.0) -> WebServer:
        """Serve from a thread; returns once listening (`RuntimeError` if it could not)."""
        self._thread = threading.Thread(target=self.run, name="syslogkit-web", daemon=True)
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
        else:  # never served: release what the constructor took
            self.socket.close()
            self.app.state.reader.close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
