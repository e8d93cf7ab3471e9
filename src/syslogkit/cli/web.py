"""`syslogkit web`: the browser UI over a store; and what `collect --web` and `demo --web` share.

Needs the `[web]` extra; without it the command says so in one line. The token comes from
`--token`, `--token-file` (first line of the file) or the `SYSLOGKIT_WEB_TOKEN` environment
variable (how `collect --web` hands it to its child without putting it on a command line);
`--new-token FILE` writes a good one (mode 600, never over an existing file). HTTPS with
`--tls-cert`/`--tls-key` (`collect`: `--web-tls-cert`/`--web-tls-key`, for the page and the
metrics); beyond loopback without TLS, one line says that the token travels in clear.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import select
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from syslogkit.cli.main import CliError

__all__ = [
    "DEFAULT_WEB",
    "TOKEN_ENV",
    "Beside",
    "WebProcess",
    "add_web_arguments",
    "check_beside",
    "parse_addr",
    "read_token",
    "serve_demo",
    "trickle",
    "web_main",
]

DEFAULT_WEB = "127.0.0.1:8514"
TOKEN_ENV = "SYSLOGKIT_WEB_TOKEN"

EPILOG = """examples:
  syslogkit web                                  # ./syslog.db on http://127.0.0.1:8514/
  syslogkit web --db /var/lib/syslog.db --listen 127.0.0.1:9000
  syslogkit web --listen 0.0.0.0:8514 --token-file /etc/syslogkit/web.token
  syslogkit collect --web 127.0.0.1:8514         # the same page beside a collector

  syslogkit web --new-token /etc/syslogkit/web.token
  syslogkit web --listen 0.0.0.0:8514 --token-file /etc/syslogkit/web.token \\
                --tls-cert web.pem --tls-key web.key

Beyond loopback a token is required (at least 16 characters, about 96 bits: --new-token makes
one); open the page once with ?token=TOKEN (the browser then keeps a session cookie, not the
token) or send 'Authorization: Bearer TOKEN'. Without TLS the token travels in clear."""


def parse_addr(text: str, default_port: int = 8514) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT`, `HOST` or `:PORT` (loopback) -> (host, port)."""
    value = text.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    host = host or "127.0.0.1"
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise CliError(f"bad address {text!r} (e.g. 127.0.0.1:8514, [::1]:8514)") from None
    if not 0 <= port <= 65535:
        raise CliError(f"bad port in {text!r}")
    return host, port


def read_token(token: str | None, token_file: str | None) -> str | None:
    """The token from the option, the file (its first line) or the environment."""
    if token and token_file:
        raise CliError("give --token or --token-file, not both")
    if token_file:
        try:
            lines = Path(token_file).read_text().splitlines()
        except OSError as exc:
            raise CliError(f"cannot read the token file: {exc.strerror or exc}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise CliError(f"the token file {token_file} is empty")
    return token or os.environ.get(TOKEN_ENV) or None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="syslogkit web",
        description="Look at the messages of a syslogkit store in a browser: search, filters, "
        "a histogram, a live tail (the store is opened read-only; a collector may keep writing).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--db", default="syslog.db", metavar="PATH", help="default ./syslog.db")
    p.add_argument(
        "--listen", default=DEFAULT_WEB, metavar="HOST:PORT", help=f"default {DEFAULT_WEB}"
    )
    p.add_argument("--token", metavar="TOKEN", help="required to listen beyond loopback")
    p.add_argument("--token-file", metavar="PATH", help="the token, read from a file")
    p.add_argument(
        "--new-token",
        metavar="FILE",
        help="write a new random token to FILE (mode 600; never over an existing file) and exit",
    )
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (chain)")
    p.add_argument("--tls-key", metavar="PEM", help="its private key")
    return p


def write_new_token(path: str) -> str:
    """A new token in a new file readable by its owner only; returns the path."""
    from syslogkit.web.security import new_token

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"{path} exists: --new-token never overwrites a token file") from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w") as out:
        out.write(new_token() + "\n")
    return path


def web_main(argv: Sequence[str]) -> int:
    """`syslogkit web`: serve the page until SIGINT/SIGTERM."""
    args = _parser().parse_args(list(argv))
    if args.new_token:
        path = write_new_token(args.new_token)
        print(f"wrote a new token to {path}: serve with --token-file {path}", flush=True)
        return 0
    from syslogkit.web import missing_extra

    why = missing_extra()
    if why:
        raise CliError(why)
    from syslogkit.collector import StoreError
    from syslogkit.web.security import ExposureError, cleartext_warning
    from syslogkit.web.server import WebServer

    host, port = parse_addr(args.listen)
    token = read_token(args.token, args.token_file)
    try:
        server = WebServer(
            args.db, host, port, token=token, tls_cert=args.tls_cert, tls_key=args.tls_key
        )
    except (ExposureError, StoreError) as exc:
        raise CliError(str(exc)) from None
    except (ssl.SSLError, ValueError) as exc:
        raise CliError(f"TLS: {exc}") from None
    except OSError as exc:
        raise CliError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    warning = cleartext_warning(server.addresses, server.tls)
    if warning:
        print(f"syslogkit web: {warning}", file=sys.stderr, flush=True)
    note = " (token required)" if token else ""
    print(f"serving {args.db} read-only on {server.url}{note}", flush=True)
    server.run()
    return 0


# -- beside a collector (collect --web) --------------------------------------------------------


class WebProcess:
    """`syslogkit web` in a child process (so the page takes no CPU from ingest); started once
    it says it is serving, else `CliError` with its own one-line reason."""

    def __init__(
        self,
        db: str,
        listen: str,
        token: str | None,
        timeout: float = 15.0,
        *,
        tls: tuple[str, str | None] | None = None,
    ) -> None:
        env = dict(os.environ)
        if token:
            env[TOKEN_ENV] = token
        command = [sys.executable, "-m", "syslogkit", "web", "--db", db, "--listen", listen]
        if tls is not None:
            command += ["--tls-cert", tls[0]] + (["--tls-key", tls[1]] if tls[1] else [])
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        self.banner = self.proc.stdout.readline().strip() if ready else ""
        if not self.banner.startswith("serving"):
            self.stop()
            lines = self.proc.stderr.read().strip().splitlines()
            reason = lines[-1] if lines else "it did not start"
            raise CliError(f"web: {reason.removeprefix('syslogkit web: error: ')}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


# -- demo --web: a trickle of made-up traffic -------------------------------------------------

_HOSTS = ("web1", "web2", "db1")
_EVENTS = (
    ("nginx", 6, 'GET /api/orders/{n} 200 {ms}ms "Mozilla/5.0"'),
    ("nginx", 4, "upstream timed out after {ms}ms while reading /api/cart/{n}"),
    ("shop", 6, "order {n} paid: total {ms}.50 EUR"),
    ("shop", 3, "payment {n} declined by the bank"),
    ("postgres", 5, "checkpoint complete: wrote {ms} buffers"),
    ("postgres", 4, "slow query took {ms}ms: SELECT * FROM orders WHERE id = {n}"),
    ("sshd", 5, "Accepted publickey for deploy from 10.0.0.{ms}"),
    ("kernel", 2, "Out of memory: killed process {n} (worker)"),
    ("cron", 7, "job {n} finished in {ms}ms"),
)


def trickle(address: str, stop: threading.Event, *, rate: float = 3.0) -> int:
    """Log made-up traffic to `address` (about `rate` messages a second) until `stop` is set;
    returns how many were sent."""
    import logging

    from syslogkit.codec.message import Severity
    from syslogkit.sender.handler import SyslogHandler

    rng = random.Random()
    handlers: dict[tuple[str, str], SyslogHandler] = {}
    sent = 0
    try:
        while not stop.wait(rng.expovariate(rate)):
            host = rng.choice(_HOSTS)
            app, severity, text = rng.choice(_EVENTS)
            handler = handlers.get((host, app))
            if handler is None:
                handler = SyslogHandler(address, hostname=host, app_name=app)
                handlers[host, app] = handler
            message = text.format(n=rng.randrange(1000, 9999), ms=rng.randrange(2, 900))
            record = logging.makeLogRecord(
                {"name": app, "levelno": logging.INFO, "levelname": "INFO", "msg": message}
            )
            record.severity = Severity(severity)
            handler.handle(record)
            sent += 1
    finally:
        for handler in handlers.values():
            handler.close()
    return sent


# -- collect --web / --metrics ------------------------------------------------------------------


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    """`collect`'s options for the page and the metrics beside the collector."""
    g = parser.add_argument_group("web UI and metrics")
    g.add_argument(
        "--web",
        nargs="?",
        const=DEFAULT_WEB,
        metavar="HOST:PORT",
        help=f"serve the web UI over the store (syslogkit web, in its own process; {DEFAULT_WEB})",
    )
    g.add_argument(
        "--web-token-file",
        metavar="PATH",
        help=f"its token (or ${TOKEN_ENV}); required beyond loopback",
    )
    g.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve /metrics (Prometheus text) and /healthz there (no extra needed)",
    )
    g.add_argument(
        "--web-tls-cert", metavar="PEM", help="serve the web UI and the metrics over HTTPS"
    )
    g.add_argument("--web-tls-key", metavar="PEM", help="the private key of --web-tls-cert")


def _beside_tls(args: argparse.Namespace) -> tuple[str, str | None] | None:
    cert, key = getattr(args, "web_tls_cert", None), getattr(args, "web_tls_key", None)
    if key and not cert:
        raise CliError("--web-tls-key given without --web-tls-cert")
    return (cert, key) if cert else None


def check_beside(args: argparse.Namespace, db_path: str | None) -> None:
    """Refuse before the collector starts: --web without a store, the exposure rule."""
    if not getattr(args, "web", None):
        return
    if db_path is None:
        raise CliError("--web shows the store: it cannot be used with --no-db")
    from syslogkit.web import missing_extra
    from syslogkit.web.security import ExposureError, check_exposure

    why = missing_extra()
    if why:
        raise CliError(why)
    host, _ = parse_addr(args.web)
    try:
        check_exposure(host, read_token(None, args.web_token_file))
    except ExposureError as exc:
        raise CliError(f"--web: {exc}") from None
    _beside_tls(args)


class Beside:
    """The web UI process and the metrics server of a running collector; `stop()` ends both.

    `snapshot` is called on the collector's event loop (`loop`), where its counters change.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        db_path: str | None,
        snapshot: Callable[[], Mapping[str, Any]],
        loop: asyncio.AbstractEventLoop,
        info: IO[str],
    ) -> None:
        self.web: WebProcess | None = None
        self.metrics: Any = None
        if getattr(args, "metrics", None):
            from syslogkit.collector.metrics import MetricsServer

            async def read() -> Mapping[str, Any]:
                return snapshot()

            def on_loop() -> Mapping[str, Any]:
                return asyncio.run_coroutine_threadsafe(read(), loop).result(5)

            host, port = parse_addr(args.metrics, 9514)
            tls = _beside_tls(args)
            try:
                context = None
                if tls is not None:
                    from syslogkit.transports.tls import ServerTLSConfig

                    context = ServerTLSConfig(tls[0], tls[1], client_auth="none").context()
                self.metrics = MetricsServer(
                    host, port, on_loop, store_path=db_path, ssl_context=context
                ).start()
            except (ssl.SSLError, ValueError) as exc:
                raise CliError(f"--metrics: TLS: {exc}") from None
            except OSError as exc:
                raise CliError(f"--metrics: cannot listen on {args.metrics}: {exc}") from None
            if not args.quiet:
                print(f"metrics on {self.metrics.url} (and /healthz)", file=info)
        if getattr(args, "web", None) and db_path is not None:
            token = read_token(None, args.web_token_file)
            tls = _beside_tls(args)
            try:
                self.web = WebProcess(db_path, args.web, token, tls=tls)
            except CliError:
                self.stop()
                raise
            if not args.quiet:
                print(f"web UI: {self.web.banner}", file=info)
            from syslogkit.web.security import cleartext_warning, resolve_host

            warning = cleartext_warning(resolve_host(parse_addr(args.web)[0]), tls is not None)
            if warning:
                print(f"web UI: {warning}", file=info)

    def stop(self) -> None:
        if self.web is not None:
            self.web.stop()
            self.web = None
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None


# -- demo --web -----------------------------------------------------------------------------------


def serve_demo(listen: str, db: str | Path, address: str, out: IO[str]) -> int:
    """The page over the demo's store with a trickle of traffic to `address`, until Ctrl-C;
    returns how many trickled messages were sent."""
    from syslogkit.web.security import ExposureError
    from syslogkit.web.server import WebServer

    host, port = parse_addr(listen)
    try:
        server = WebServer(db, host, port)
    except ExposureError as exc:
        raise CliError(f"--web: {exc}") from None
    except OSError as exc:
        raise CliError(f"--web: cannot listen on {listen}: {exc.strerror or exc}") from None
    stop = threading.Event()
    with server:
        out.write(f"\nopen {server.url} to look at the logs: search, filters, a histogram and\n")
        out.write("a live tail of made-up traffic (about 3 messages a second). Ctrl-C stops.\n\n")
        out.flush()
        try:
            return trickle(address, stop)
        except KeyboardInterrupt:
            return 0
        finally:
            stop.set()
