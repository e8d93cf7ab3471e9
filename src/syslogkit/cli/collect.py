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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from syslogkit.cli.forms import DEFAULT_DB, parse_duration, parse_size, parse_time
from syslogkit.cli.main import CliError
from syslogkit.cli.nats import add_collect_arguments as add_nats_arguments
from syslogkit.cli.settings import SinkSpec, check_main, with_config
from syslogkit.collector.systemd import notify

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
    p.add_argument(
        "--config",
        metavar="FILE",
        help="a TOML config file (docs/operations.md); flags given beside it override it",
    )
    p.add_argument(
        "--check", metavar="FILE", help="check a config file, print each fault, exit 0 or 1"
    )
    p.add_argument(
        "--reload",
        metavar="PIDFILE",
        help="tell the collector whose --pid-file this is to reload its config (SIGHUP)",
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
    misc.add_argument(
        "--user",
        metavar="NAME",
        help="started as root: bind, then run as this user (ports under 1024 without root)",
    )
    misc.add_argument("--group", metavar="NAME", help="with --user: this group (default its own)")
    misc.add_argument(
        "--pid-file", metavar="PATH", help="write the process id there (for --reload)"
    )
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
    from syslogkit.cli.nats import nats_sources, split_nats_listen
    from syslogkit.collector import Collector, Sink, StoreError, zone_of
    from syslogkit.collector.routes import compile_routes

    listen, nats_listen = split_nats_listen(args.listen or list(DEFAULT_LISTEN))
    names = dict(zip(args.listen or DEFAULT_LISTEN, args.listener_names or (), strict=False))
    try:
        from syslogkit.collector import parse_listen_url

        addresses = [parse_listen_url(u) for u in listen]
    except ValueError as exc:
        raise CliError(str(exc)) from None
    tls = tls_config(args, addresses)
    try:
        zone = zone_of(args.timezone)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    limits = limits_of(args)
    sockets = _bound_sockets(args, addresses, limits)  # before any file is opened as root
    specs = args.sink_specs
    sinks: list[Sink] = []
    stores = [spec for spec in specs if spec.kind == "store"]
    db_path: str | None = stores[0].options.get("path", DEFAULT_DB) if stores else None
    try:
        for spec in specs:
            sinks.append(_sink(spec, args, out))
        router = compile_routes(args.routes, [spec.name for spec in specs], args.listener_names)
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
            router=router,
            sockets=sockets,
            listener_tls=listener_tls(args, addresses),
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
    for sock in collector.unused_sockets:
        print(
            f"syslogkit collect: no listener for the socket {sock.getsockname()}", file=sys.stderr
        )
        sock.close()
    if router is not None:  # a listener's name, by the URL it is bound to
        for url, listener in zip(listen, collector.listeners, strict=False):
            router.listener_names[listener.url] = names.get(url, url)

    # handlers before the first line: a supervisor (or a test) may signal as soon as it reads it
    reloader = _reloader(args, collector, specs, sinks, router, names, out)
    remove_pid_file = _write_pid_file(args.pid_file) if args.pid_file else None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    info = sys.stderr if any(spec.kind == "stdout" for spec in specs) else out
    if not args.quiet:
        for url in urls:
            print(f"listening on {url}", file=info)
        if db_path:
            print(f"storing into {db_path}", file=info)
        for spec in specs:
            if spec.kind == "jsonl":
                print(f"appending JSON lines to {spec.options['path']}", file=info)
        if router is not None:
            print(f"routing by {len(args.routes)} routes", file=info)
        if any(spec.kind == "nats" for spec in specs):
            print(f"publishing to JetStream stream {args.nats_stream}", file=info)
        if addresses:
            print(f"try: {_send_hint(urls)}", file=info)
        print(end="", file=info, flush=True)
    notify(f"READY=1\nSTATUS=listening on {', '.join(urls)}")

    def stats() -> dict[str, Any]:
        if reloader is None:
            return _stats(collector, sinks, router)
        now = reloader.running
        return _stats(collector, now.sinks, now.router) | {"reload": reloader.stats()}

    stats_interval = max(0.1, args.stats_interval)
    beside: Beside | None = None
    try:
        beside = Beside(args, db_path, stats, loop, info)
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), stats_interval)
            if args.stats_file:
                _write_stats(args.stats_file, stats())
    finally:
        notify("STOPPING=1\nSTATUS=draining")
        if beside is not None:
            beside.stop()
        await collector.stop()
        now_router = reloader.running.router if reloader is not None else router
        if now_router is not None:
            now_router.tell_untold()
        final = stats()
        if args.stats_file:
            _write_stats(args.stats_file, final)
        if not args.quiet:
            _print_summary(final, sys.stderr, stores=db_path is not None)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        if remove_pid_file is not None:
            remove_pid_file()
    return 0


def _signal_reload(pid_file: str) -> int:
    """`collect --reload PIDFILE`: SIGHUP to the collector named there."""
    try:
        pid = int(Path(pid_file).read_text().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise CliError(f"--reload: no process id in {pid_file}: {exc}") from None
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise CliError(f"--reload: process {pid}: {exc.strerror or exc}") from None
    print(f"asked process {pid} to reload (its stderr or journal says how it went)")
    return 0


def _write_pid_file(path: str) -> Callable[[], None]:
    """The process id in `path` (written whole, then renamed); returns what removes it."""
    tmp = f"{path}.tmp{os.getpid()}"
    Path(tmp).write_text(f"{os.getpid()}\n")
    os.replace(tmp, path)

    def remove() -> None:
        with contextlib.suppress(OSError):
            if Path(path).read_text().split()[0] == str(os.getpid()):
                os.unlink(path)

    return remove


def _reloader(
    args: argparse.Namespace,
    collector: Any,
    specs: list[SinkSpec],
    sinks: list[Any],
    router: Any,
    names: dict[str, str],
    out: IO[str],
) -> Any:
    """SIGHUP: with --config, reload it (cli/reload.py; returns the Reloader); always, the
    file sinks open their files again (logrotate)."""
    from syslogkit.cli.reload import Reloader, Running

    reloader = None
    if args.config:
        reloader = Reloader(
            args.parser,
            args.given,
            args.config,
            Running(collector, list(specs), list(sinks), router, names),
            args,
            lambda spec, new: _sink(spec, new, out),
            tls_config,
        )
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    def hangup() -> None:
        task = loop.create_task(
            reloader.reload() if reloader is not None else _reopen_files(collector, loop)
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, hangup)
    return reloader


async def _reopen_files(collector: Any, loop: asyncio.AbstractEventLoop) -> None:
    """SIGHUP: never fatal. The file sinks are re-opened between two batches (logrotate's
    rename, then HUP: nothing lost), said in one line on stderr."""
    names = await loop.run_in_executor(None, collector.pipeline.reopen)
    what = f"re-opened {', '.join(names)}" if names else "no file sink to re-open"
    print(f"SIGHUP: {what}; still running", file=sys.stderr, flush=True)


def ssl_error() -> type[Exception]:
    import ssl

    return ssl.SSLError


def limits_of(args: argparse.Namespace) -> Any:
    """The listeners' limits from the flags; read at start and at every reload."""
    from syslogkit.collector import Limits

    if args.max_connections_per_peer < 1:
        raise CliError("--max-connections-per-peer must be at least 1")
    return Limits(
        max_frame=args.max_frame,
        max_connections=args.max_connections,
        max_connections_per_peer=args.max_connections_per_peer,
        frame_timeout=args.frame_timeout,
        idle_timeout=args.idle_timeout,
        handshake_timeout=args.handshake_timeout,
        udp_rcvbuf=parse_size(args.udp_rcvbuf),
        relp_window=args.relp_window,
    )


def tls_config(args: argparse.Namespace, addresses: Sequence[Any]) -> Any:
    """The TLS listeners' settings from the flags (None without TLS); read at start and at
    every reload."""
    own = listener_tls(args, addresses)
    if not (any(a.is_tls and a not in own for a in addresses) or args.tls_cert):
        return None
    if not args.tls_cert:
        raise CliError("a tls:// or relp+tls:// listener needs --tls-cert (and --tls-key)")
    return _server_tls({}, args)


def listener_tls(args: argparse.Namespace, addresses: Sequence[Any]) -> dict[Any, Any]:
    """The listeners' own TLS settings (a config file's `[[listeners]] tls_*`), by address."""
    own = getattr(args, "listener_tls", None) or {}
    urls = [u for u in args.listen or () if not u.startswith(("nats://", "nats+tls://"))]
    return {
        address: _server_tls(own[url], args)
        for url, address in zip(urls, addresses, strict=False)
        if url in own and address.is_tls
    }


def _server_tls(own: dict[str, str], args: argparse.Namespace) -> Any:
    """`[tls]` (the flags) with a listener's own keys over it."""
    from syslogkit.transports.tls import ServerTLSConfig

    cert, key = own.get("cert", args.tls_cert), own.get("key", args.tls_key)
    ca, capath = own.get("ca", args.tls_ca), own.get("capath", args.tls_capath)
    for path in (cert, key, ca):
        if path and not Path(path).is_file():
            raise CliError(f"no such file: {path}")
    client_auth = own.get("client_cert", args.client_cert) or (
        "optional" if ca or capath else "none"
    )
    return ServerTLSConfig(
        cert_file=cert, key_file=key, ca_file=ca, ca_dir=capath, client_auth=client_auth
    )


def _bound_sockets(args: argparse.Namespace, addresses: Sequence[Any], limits: Any) -> list[Any]:
    """systemd's sockets (socket activation); with --user/--group, the other listeners bound
    now, then the privileges dropped (collector/systemd.py)."""
    from syslogkit.collector.systemd import bind_early, drop_privileges, listen_fds, take_socket

    inherited = listen_fds()
    if not (args.user or args.group):
        return inherited
    sockets: list[Any] = []
    try:
        for address in addresses:
            sock = take_socket(inherited, address)
            sockets.append(sock if sock is not None else bind_early(address, limits))
        drop_privileges(args.user, args.group)
    except (OSError, ValueError) as exc:
        for sock in sockets + inherited:
            sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CliError(f"--user/--group: {reason}") from None
    return sockets + inherited


def _sink(spec: SinkSpec, args: argparse.Namespace, out: IO[str]) -> Any:
    """The sink a spec (of the file or of the flags) describes."""
    from syslogkit.cli.nats import nats_sinks
    from syslogkit.collector import ForwardSink, JsonLinesSink, SQLiteSink, StdoutSink

    options = spec.options
    if spec.kind == "store":
        min_free = options.get("min_free", args.min_free)
        return SQLiteSink(
            options.get("path", DEFAULT_DB),
            max_age=parse_duration(args.retention_age) if args.retention_age else None,
            max_bytes=parse_size(args.retention_size) if args.retention_size else None,
            synchronous=options.get("sync", args.sync),
            process=options.get("writer_process", not args.no_writer_process),
            min_free=None if min_free is None else parse_size(min_free),
        )
    if spec.kind == "jsonl":
        return JsonLinesSink(options["path"])
    if spec.kind == "stdout":
        return StdoutSink(out, json_lines=options.get("json", False))
    if spec.kind == "forward":
        return ForwardSink(
            options["url"],
            ca_file=options.get("ca_file"),
            cert_file=options.get("cert_file"),
            key_file=options.get("key_file"),
            spool_dir=options.get("spool"),
        )
    if spec.kind == "file":
        from syslogkit.collector.sinks.file import FileSink

        return FileSink(
            options["path"],
            format=options.get("format", "raw"),
            max_open=options.get("max_open", 64),
        )
    if spec.kind == "nats":
        return nats_sinks(argparse.Namespace(**{**vars(args), "nats": options["servers"]}))[0]
    raise CliError(f"sink {spec.name}: unknown kind {spec.kind!r}")


def _stats(collector: Any, sinks: Sequence[Any], router: Any = None) -> dict[str, Any]:
    from syslogkit.collector.sinks import HasStats, SQLiteSink

    stats: dict[str, Any] = collector.stats()
    if router is not None:
        stats["routes"] = router.stats()
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
    routes = stats.get("routes")
    if routes and (routes["dropped"] or routes["unrouted"] or routes.get("rate_limited")):
        print(
            f"routes: dropped={routes['dropped']} unrouted={routes['unrouted']}"
            f" rate_limited={routes.get('rate_limited', 0)} (not given to any sink)",
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
    parser = _collect_parser()
    args = parser.parse_args(list(argv))
    if args.check:
        return check_main(args.check, sys.stdout, sys.stderr)
    if args.reload:
        return _signal_reload(args.reload)
    args = with_config(parser, argv, args.config)
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
