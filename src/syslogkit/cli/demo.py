"""`syslogkit demo`: a collector, and an application logging through it over UDP, TCP and TLS.

Everything runs on loopback in this process: certificates are made in a temporary folder, the
collector stores into SQLite there and prints each record as it arrives, the application logs
through one `SyslogHandler` per transport, and a summary says what arrived where.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from syslogkit.cli.main import CliError

TRANSPORTS = ("udp", "tcp", "tls")

EXAMPLES = """examples:
  syslogkit demo                 # everything in a temporary folder, removed at the end
  syslogkit demo --keep demo/    # keep the certificates and demo/demo.db; then try
                                 #   syslogkit query --db demo/demo.db"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syslogkit demo",
        description="Start a collector (UDP, TCP and TLS with client certificates required), "
        "log from an application through SyslogHandler over each transport, and show what "
        "arrives. Loopback only; exits 0 when every record arrived.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--keep", metavar="DIR", help="write the files here and keep them")
    parser.add_argument(
        "--count", type=int, default=3, help="records per transport (default 3, at most 1000)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for arrival")
    parser.add_argument(
        "--web",
        nargs="?",
        const="127.0.0.1:8514",
        metavar="HOST:PORT",
        help="then keep the collector running with a trickle of traffic and show it in the web "
        "UI (default 127.0.0.1:8514) until Ctrl-C; needs the [web] extra",
    )
    return parser


class ShowingSink:
    """A collector sink that prints each record as it arrives and counts them per transport."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.arrived: Counter[str] = Counter()
        self._changed = threading.Condition()

    def write(self, records: Sequence[Any]) -> None:
        from syslogkit.collector import format_human

        for record in records:
            who = f" ({record.tls_subject})" if record.tls_subject else ""
            line, *more = format_human(record).split("\\n")
            if more:
                line += f"  [+{len(more)} more lines: the traceback]"
            self.out.write(f"  {record.transport:>3}{who} | {line}\n")
        self.out.flush()
        with self._changed:
            self.arrived.update(record.transport for record in records)
            self._changed.notify_all()

    def flush(self) -> None:
        """Nothing to make durable."""

    def close(self) -> None:
        """Nothing to release."""

    def wait_for(self, expected: int, timeout: float) -> bool:
        """Wait until `expected` records arrived in all (bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(self.arrived.values()) < expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True


def _application_logs(handlers: dict[str, logging.Handler], count: int) -> dict[str, int]:
    """The application: one logger, one handler per transport; returns records logged each."""
    logged: dict[str, int] = {}
    for transport, handler in handlers.items():
        log = logging.getLogger(f"syslogkit.demo.{transport}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        for n in range(1, count + 1):
            if n == 2:
                try:
                    int("twelve")  # a real traceback for the demo
                except ValueError:
                    log.exception("order %d over %s failed", n, transport)
                continue
            log.warning(
                "order %d over %s: total 12.50 €",
                n,
                transport,
                extra={"structured_data": {"order@32473": {"id": n, "via": transport}}},
            )
        logged[transport] = count
        handler.flush()
        handler.close()
        log.removeHandler(handler)
    return logged


def _make_handlers(urls: dict[str, str], pki: Any) -> dict[str, logging.Handler]:
    from syslogkit.sender.handler import SyslogHandler

    client = pki.clients[0]
    handlers: dict[str, logging.Handler] = {
        "udp": SyslogHandler(urls["udp"], app_name="shop"),
        "tcp": SyslogHandler(urls["tcp"], app_name="shop"),
        "tls": SyslogHandler(
            urls["tls"],
            app_name="shop",
            ca_file=str(pki.ca.cert),
            cert_file=str(client.cert),
            key_file=str(client.key),
            server_hostname="localhost",
        ),
    }
    for handler in handlers.values():
        handler.setFormatter(logging.Formatter("%(message)s"))
    return handlers


def _summary(out: TextIO, logged: dict[str, int], arrived: Counter[str], where: str) -> bool:
    out.write("\nsummary:\n  transport  logged  arrived\n")
    for transport in TRANSPORTS:
        out.write(f"  {transport:<9}  {logged[transport]:>6}  {arrived[transport]:>7}\n")
    complete = all(arrived[t] >= logged[t] for t in TRANSPORTS)
    verdict = "every record arrived" if complete else "some records did not arrive"
    out.write(f"  {verdict}; {where}\n")
    return complete


def run_demo(
    directory: Path, count: int, timeout: float, out: TextIO, *, keep: bool, web: str | None = None
) -> bool:
    """Run the demo with its files in `directory`; True when every record arrived."""
    from syslogkit.cli.pki import write_pki
    from syslogkit.collector import CollectorThread, SQLiteSink, TLSConfig

    pki = write_pki(directory / "pki", server_names=["localhost", "127.0.0.1"], clients=["app"])
    db = directory / "demo.db"
    shower = ShowingSink(out)
    tls = TLSConfig(
        cert_file=str(pki.servers[0].cert),
        key_file=str(pki.servers[0].key),
        ca_file=str(pki.ca.cert),
        client_auth="required",
    )
    listen = [f"{t}://127.0.0.1:0" for t in TRANSPORTS]
    with CollectorThread(listen, [SQLiteSink(db), shower], tls=tls) as collector:
        urls = {t: collector.url(t) for t in TRANSPORTS}
        out.write("syslogkit demo: a collector and an application logging through it\n")
        out.write(f"  certificates: {pki.directory} (CA, server, client 'app')\n")
        out.write(f"  collector: {' '.join(urls.values())} (TLS requires a client certificate)\n")
        out.write("\narriving (transport | time host app[pid] severity: [sd] message):\n")
        out.flush()
        logged = _application_logs(_make_handlers(urls, pki), count)
        shower.wait_for(sum(logged.values()), timeout)
        if web:
            from syslogkit.cli.web import serve_demo

            serve_demo(web, db, urls["udp"], out)
    where = (
        f"query them with: syslogkit query --db {db}"
        if keep
        else "the store was temporary (keep it with --keep DIR)"
    )
    return _summary(out, logged, shower.arrived, where)


def demo_main(argv: list[str]) -> int:
    """Entry point of `syslogkit demo`."""
    args = _parser().parse_args(argv)
    if not 1 <= args.count <= 1000:
        raise CliError("--count must be between 1 and 1000")
    from syslogkit.cli.pki import require_cryptography

    try:
        require_cryptography()
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    if args.web:
        from syslogkit.web import missing_extra

        if missing_extra():
            raise CliError(str(missing_extra()))
    directory = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="syslogkit-demo-"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        ok = run_demo(
            directory, args.count, args.timeout, sys.stdout, keep=bool(args.keep), web=args.web
        )
    except OSError as exc:
        raise CliError(str(exc)) from None
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    return 0 if ok else 1
