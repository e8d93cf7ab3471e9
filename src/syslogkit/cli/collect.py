"""`syslogkit collect` (and the time, duration and size forms `tail` and `query` share).

`collect_main(argv)` takes the arguments after the subcommand and returns the exit status; a
user's mistake raises `CliError` (one line, exit status 2, printed by `syslogkit.cli.main`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from syslogkit.cli.forms import DEFAULT_DB, parse_duration, parse_size, parse_time
from syslogkit.cli.main import CliError
from syslogkit.cli.nats import add_collect_arguments as add_nats_arguments

__all__ = [
    "DEFAULT_DB",
    "collect_main",
    "parse_duration",
    "parse_size",
    "parse_time",
]

DEFAULT_LISTEN = ("udp://127.0.0.1:5514", "tcp://127.0.0.1:5514")
DEFAULT_SEND_ADDRESS = "udp://127.0.0.1:5514"

# -- collect ------------------------------------------------------------------------------------

COLLECT_EPILOG = f"""examples:
  syslogkit collect              # {" and ".join(DEFAULT_LISTEN)} into ./{DEFAULT_DB}
  syslogkit collect -l udp://0.0.0.0:514 -l tcp://0.0.0.0:514 --db /var/lib/syslog.db
  syslogkit collect -l tls://0.0.0.0:6514 --tls-cert server.pem --tls-key server.key \\
                    --tls-ca ca.pem --client-cert required
  syslogkit collect -l relp://0.0.0.0:2514 --retention-age 7d --retention-size 2G
  syslogkit collect --no-db --stdout                 # print what arrives, store nothing
  syslogkit collect --jsonl messages.jsonl --forward tcp://central:514
  syslogkit collect --forward relp+tls://central:2514 --forward-ca-file ca.pem \\
                    --forward-spool /var/spool/syslogkit
  syslogkit collect -l udp://0.0.0.0:514?tz=Europe/Paris --timezone UTC

listener URLs: udp:// tcp:// tls:// relp:// relp+tls:// host:port (port 0: any free port),
optionally ?tz=ZONE: the zone of timestamps without a UTC offset on that listener, and
?max_connections_per_peer=N: that listener's limit per source address.
counts: parsed (cleanly), noted (parsed with a note: lenient or assumed fields), unparsed
(stored raw); `syslogkit query --noted` and `--errors` show the last two."""


def _collect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="syslogkit collect",
        description="Receive syslog over UDP, TCP, TLS and RELP; store it in SQLite (and more).",
        epilog=COLLECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-l", "--listen", action="append", metavar="URL", help="listener URL (repeatable)"
    )
    out = p.add_argument_group("where messages go")
    out.add_argument(
        "--db",
        metavar="PATH",
        help=f"the store: a folder of SQLite files, one per period (default ./{DEFAULT_DB};"
        " a store of an earlier version, one file, becomes its oldest file)",
    )
    out.add_argument("--no-db", action="store_true", help="no SQLite store")
    out.add_argument("--jsonl", metavar="PATH", help="also append JSON lines to PATH")
    out.add_argument("--stdout", action="store_true", help="also print messages, human-readable")
    out.add_argument("--stdout-json", action="store_true", help="also print JSON lines")
    out.add_argument(
        "--forward",
        action="append",
        metavar="URL",
        help="relay raw to a udp, tcp, tls, relp or relp+tls URL (repeatable)",
    )
    out.add_argument("--forward-ca-file", metavar="PEM", help="CA for tls forward destinations")
    out.add_argument("--forward-cert-file", metavar="PEM", help="client certificate to forward")
    out.add_argument("--forward-key-file", metavar="PEM", help="its private key")
    out.add_argument(
        "--forward-spool", metavar="DIR", help="keep what cannot be forwarded yet on disk there"
    )
    out.add_argument(
        "--sync",
        choices=("off", "normal", "full"),
        default="normal",
        help="SQLite synchronous mode (normal: a commit survives a crash of the collector; "
        "full: also a power loss)",
    )
    out.add_argument(
        "--retention-age", metavar="DURATION", help="delete the files of messages older (7d)"
    )
    out.add_argument(
        "--retention-size",
        metavar="SIZE",
        help="keep the store's folder under SIZE on disk, oldest files deleted first (2G)",
    )
    out.add_argument(
        "--min-free",
        metavar="SIZE",
        help="stop writing the store while less than SIZE is free on its filesystem (with"
        " --retention-size, delete the oldest files first to make room); default: 1%% of"
        " the filesystem, within 16M..100M, at most 10%% of it; 0: off",
    )
    out.add_argument(
        "--stop-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="at SIGTERM, how long to retry a failing sink before giving up what it holds"
        " (counted and told)",
    )
    out.add_argument("--commit-interval", type=float, default=0.02, metavar="SECONDS")
    out.add_argument(
        "--no-writer-process",
        action="store_true",
        help="run SQLite in the collector's process (default: a child process, twice as fast)",
    )
    tls = p.add_argument_group("TLS (tls:// and relp+tls:// listeners)")
    tls.add_argument("--tls-cert", metavar="PEM", help="server certificate (chain)")
    tls.add_argument("--tls-key", metavar="PEM", help="server private key")
    tls.add_argument("--tls-ca", metavar="PEM", help="CA file for client certificates")
    tls.add_argument("--tls-capath", metavar="DIR", help="CA directory for client certificates")
    tls.add_argument(
        "--client-cert",
        choices=("none", "optional", "required"),
        help="client certificates (default: optional with --tls-ca, else none)",
    )
    p.add_argument(
        "--timezone",
        metavar="ZONE",
        help="zone of timestamps without a UTC offset: local (default), UTC, +05:30, "
        "Europe/Paris (a listener's ?tz= overrides it)",
    )
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-frame", type=int, default=8192, metavar="BYTES")
    lim.add_argument(
        "--max-connections",
        type=int,
        default=512,
        metavar="N",
        help="per listener (default 512); when full, the busiest peer's oldest idle or "
        "half-frame connection is cut for a peer holding fewer",
    )
    lim.add_argument(
        "--max-connections-per-peer",
        type=int,
        default=64,
        metavar="N",
        help="connections one source address may hold on a listener (default 64; a "
        "listener's ?max_connections_per_peer=N overrides it); beyond it refused and told",
    )
    lim.add_argument("--frame-timeout", type=float, default=10.0, metavar="SECONDS")
    lim.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS")
    lim.add_argument("--handshake-timeout", type=float, default=10.0, metavar="SECONDS")
    lim.add_argument("--udp-rcvbuf", default="32M", metavar="SIZE")
    lim.add_argument("--relp-window", type=int, default=128, metavar="N")
    lim.add_argument("--high-water", type=int, default=50_000, metavar="RECORDS")
    misc = p.add_argument_group("other")
    misc.add_argument("--stats-file", metavar="PATH", help="write counters as JSON there")
    misc.add_argument("--stats-interval", type=float, default=5.0, metavar="SECONDS")
    misc.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    misc.add_argument("--no-uvloop", action="store_true", help="use asyncio's own loop")
    add_nats_arguments(p)
    from syslogkit.cli.web import add_web_arguments

    add_web_arguments(p)
    return p


def _send_hint(urls: Sequence[str]) -> str:
    for url in urls:
        scheme, _, rest = url.partition("://")
        host, _, port = rest.rpartition(":")
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
        target = f"{scheme}://{host}:{port}"
        if scheme in ("udp", "tcp", "relp"):
            if target == DEFAULT_SEND_ADDRESS:
                return 'syslogkit send "hello"'
            return f'syslogkit send --address {target} "hello"'
    url = urls[0]
    return f'syslogkit send --address {url} --ca-file CA.pem "hello"'


def _write_stats(path: str, stats: dict[str, Any]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(stats, f, indent=1, default=str)
    os.replace(tmp, path)


async def _collect(args: argparse.Namespace, out: IO[str]) -> int:
    from syslogkit.cli.nats import nats_sinks, nats_sources, split_nats_listen
    from syslogkit.collector import (
        Collector,
        ForwardSink,
        JsonLinesSink,
        Limits,
        Sink,
        SQLiteSink,
        StdoutSink,
        StoreError,
        zone_of,
    )
    from syslogkit.transports.tls import ServerTLSConfig

    listen, nats_listen = split_nats_listen(args.listen or list(DEFAULT_LISTEN))
    try:
        from syslogkit.collector import parse_listen_url

        addresses = [parse_listen_url(u) for u in listen]
    except ValueError as exc:
        raise CliError(str(exc)) from None
    tls: ServerTLSConfig | None = None
    if any(a.is_tls for a in addresses) or args.tls_cert:
        if not args.tls_cert:
            raise CliError("a tls:// or relp+tls:// listener needs --tls-cert (and --tls-key)")
        for path in (args.tls_cert, args.tls_key, args.tls_ca):
            if path and not Path(path).is_file():
                raise CliError(f"no such file: {path}")
        client_auth = args.client_cert or ("optional" if args.tls_ca or args.tls_capath else "none")
        tls = ServerTLSConfig(
            cert_file=args.tls_cert,
            key_file=args.tls_key,
            ca_file=args.tls_ca,
            ca_dir=args.tls_capath,
            client_auth=client_auth,
        )
    try:
        zone = zone_of(args.timezone)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.max_connections_per_peer < 1:
        raise CliError("--max-connections-per-peer must be at least 1")
    limits = Limits(
        max_frame=args.max_frame,
        max_connections=args.max_connections,
        max_connections_per_peer=args.max_connections_per_peer,
        frame_timeout=args.frame_timeout,
        idle_timeout=args.idle_timeout,
        handshake_timeout=args.handshake_timeout,
        udp_rcvbuf=parse_size(args.udp_rcvbuf),
        relp_window=args.relp_window,
    )
    sinks: list[Sink] = []
    db_path: str | None = None
    try:
        if not args.no_db and not (args.nats and not args.db):  # an edge stores nothing
            db_path = args.db or DEFAULT_DB
            sinks.append(
                SQLiteSink(
                    db_path,
                    max_age=parse_duration(args.retention_age) if args.retention_age else None,
                    max_bytes=parse_size(args.retention_size) if args.retention_size else None,
                    synchronous=args.sync,
                    process=not args.no_writer_process,
                    min_free=None if args.min_free is None else parse_size(args.min_free),
                )
            )
        if args.jsonl:
            sinks.append(JsonLinesSink(args.jsonl))
        if args.stdout or args.stdout_json:
            sinks.append(StdoutSink(out, json_lines=args.stdout_json))
        for url in args.forward or ():
            sinks.append(
                ForwardSink(
                    url,
                    ca_file=args.forward_ca_file,
                    cert_file=args.forward_cert_file,
                    key_file=args.forward_key_file,
                    spool_dir=args.forward_spool,
                )
            )
        sinks.extend(nats_sinks(args))
    except (StoreError, OSError, ValueError, CliError) as exc:
        for sink in sinks:
            sink.close()
        raise CliError(str(exc)) from None
    if not sinks:
        raise CliError("nothing to do: --no-db without --jsonl, --stdout or --forward")
    from syslogkit.cli.web import Beside, check_beside

    try:
        check_beside(args, db_path)
    except CliError:
        for sink in sinks:
            sink.close()
        raise
    try:
        collector = Collector(
            addresses,
            sinks,
            tls=tls,
            limits=limits,
            zone=zone,
            commit_interval=args.commit_interval,
            high_water=args.high_water,
            stop_timeout=max(0.0, args.stop_timeout),
            sources=nats_sources(args, nats_listen, db_path),
        )
    except (ValueError, OSError, ssl_error()) as exc:
        for sink in sinks:
            sink.close()
        raise CliError(f"TLS: {exc}" if tls else str(exc)) from None
    try:
        urls = await collector.start()
    except OSError as exc:
        for sink in sinks:
            with contextlib.suppress(Exception):
                sink.close()
        raise CliError(f"cannot listen: {exc.strerror or exc}") from None

    # handlers before the first line: a supervisor (or a test) may signal as soon as it reads it
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    hangups: set[asyncio.Task[None]] = set()

    def hangup() -> None:
        task = loop.create_task(_reopen_files(collector, loop))
        hangups.add(task)
        task.add_done_callback(hangups.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, hangup)
    info = sys.stderr if (args.stdout or args.stdout_json) else out
    if not args.quiet:
        for url in urls:
            print(f"listening on {url}", file=info)
        if db_path:
            print(f"storing into {db_path}", file=info)
        if args.jsonl:
            print(f"appending JSON lines to {args.jsonl}", file=info)
        if args.nats:
            print(f"publishing to JetStream stream {args.nats_stream}", file=info)
        if addresses:
            print(f"try: {_send_hint(urls)}", file=info)
        print(end="", file=info, flush=True)

    stats_interval = max(0.1, args.stats_interval)
    beside: Beside | None = None
    try:
        beside = Beside(args, db_path, lambda: _stats(collector, sinks), loop, info)
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), stats_interval)
            if args.stats_file:
                _write_stats(args.stats_file, _stats(collector, sinks))
    finally:
        if beside is not None:
            beside.stop()
        await collector.stop()
        final = _stats(collector, sinks)
        if args.stats_file:
            _write_stats(args.stats_file, final)
        if not args.quiet:
            _print_summary(final, sys.stderr, stores=db_path is not None)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    return 0


async def _reopen_files(collector: Any, loop: asyncio.AbstractEventLoop) -> None:
    """SIGHUP: never fatal. The file sinks are re-opened between two batches (logrotate's
    rename, then HUP: nothing lost), said in one line on stderr."""
    names = await loop.run_in_executor(None, collector.pipeline.reopen)
    what = f"re-opened {', '.join(names)}" if names else "no file sink to re-open"
    print(f"SIGHUP: {what}; still running", file=sys.stderr, flush=True)


def ssl_error() -> type[Exception]:
    import ssl

    return ssl.SSLError


def _stats(collector: Any, sinks: Sequence[Any]) -> dict[str, Any]:
    from syslogkit.collector.sinks import HasStats, SQLiteSink

    stats: dict[str, Any] = collector.stats()
    stats["time"] = time.time()
    stats["started_at"] = collector.started_at
    forwards = [
        s.stats() for s in sinks if isinstance(s, HasStats) and not isinstance(s, SQLiteSink)
    ]
    if forwards:
        stats["forward"] = forwards
    return stats


def _print_summary(stats: dict[str, Any], out: IO[str], *, stores: bool = True) -> None:
    """One line per listener (received, and how: parsed, noted, unparsed; dropped, refused),
    one per NATS edge sink (published, spooled, lost), one per other sink (what it really
    took: committed, and its own counters), then what was stored (an edge without a store:
    what the sinks accepted) and what was given up."""
    for listener in stats["listeners"]:
        dropped = listener.get("dropped") or {}
        extra = f" dropped={dropped}" if dropped else ""
        if listener.get("refused"):
            extra += f" refused={listener['refused']}"
        for key in ("skipped_held", "bad_messages"):  # a JetStream source's
            if key in listener:
                extra += f" {key}={listener[key]}"
        print(
            f"{listener['url']}: received={listener['received']} parsed={listener['parsed']}"
            f" noted={listener['noted']} unparsed={listener['unparsed']}{extra}",
            file=out,
        )
    edges = [f for f in stats.get("forward", ()) if "edge_id" in f]
    for edge in edges:
        print(
            f"JetStream stream {edge['stream']}: published={edge['published_records']}"
            f" spooled={edge['spool_records']} lost={edge['lost']}"
            + (f" unhealthy={edge['unhealthy']}" if edge.get("unhealthy") else "")
            + (f" last_error={edge['last_error']}" if edge.get("last_error") else ""),
            file=out,
        )
    pipe = stats["pipeline"]
    for sink in pipe.get("sinks") or ():
        if "edge_id" not in sink:  # an edge's JetStream sink has its line above
            print(_sink_summary(sink), file=out)
    given_up = "".join(
        f" {key}={pipe[key]}" for key in ("not_stored", "unanswered") if pipe.get(key)
    )
    if pipe.get("paused_seconds", 0) >= 0.1:
        given_up += f" paused_seconds={pipe['paused_seconds']:.1f}"
    done = "stored" if stores or not edges else "accepted"
    print(
        f"{done}={pipe['committed']} errors={pipe['errors']}{given_up}"
        + (f" last_error={pipe['last_error']}" if pipe["last_error"] else ""),
        file=out,
        flush=True,
    )


#: a sink's own counters the summary shows (when not zero), after `committed`
_SINK_SUMMARY = (
    "sent",
    "dropped",
    "maybe_lost",
    "spooled",
    "queued",
    "retention_deleted",
    "retention_deleted_young",
    "retention_errors",
    "writer_restarts",
    "failures",
    "waiting",
)


def _sink_summary(sink: dict[str, Any]) -> str:
    """`NAME: committed=N` and the counters of `_SINK_SUMMARY` that are not zero."""
    extra = "".join(f" {key}={sink[key]}" for key in _SINK_SUMMARY if sink.get(key))
    if sink.get("failing"):
        extra += f" failing ({sink.get('last_error')})"
    return f"{sink['name']}: committed={sink['committed']}{extra}"


def _tune_gc_for_a_server() -> None:
    """Fewer cyclic-GC passes: the records queued for the store are many young objects that
    outlive several default gen-0 passes (measured: about a quarter of the collector's CPU)."""
    gc.freeze()  # what was imported and built at start-up is never scanned again
    gc.set_threshold(50_000, 20, 100)


def collect_main(argv: Sequence[str]) -> int:
    """`syslogkit collect`: listen, store, until SIGTERM or Ctrl-C (then drain and exit 0)."""
    args = _collect_parser().parse_args(list(argv))
    _tune_gc_for_a_server()
    loop_factory = asyncio.new_event_loop
    if not args.no_uvloop:
        try:
            import uvloop  # type: ignore[import-not-found, unused-ignore]

            loop_factory = uvloop.new_event_loop
        except ImportError:
            pass
    loop = loop_factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(_collect(args, sys.stdout))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
