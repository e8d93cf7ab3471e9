"""`syslogkit nats init`, and the `--nats*` options of `syslogkit collect`.

```
syslogkit nats init -s nats://n1:4222,nats://n2:4222 --replicas 3 --max-age 7d --max-size 50G
syslogkit collect -l relp://0.0.0.0:2514 --nats nats://n1:4222,nats://n2:4222   # an edge
syslogkit collect -l nats://n1:4222,nats://n2:4222 --db syslog.db               # a store
```

Credentials: `user:password@` in a URL (or `NATS_URL` in the environment, kept out of the
process list), `--nats-creds FILE`, `--nats-nkey FILE`; TLS: `tls://` URLs or `--nats-ca`
(plus `--nats-cert/--nats-key` for servers that verify clients). Nothing secret is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syslogkit.cli.main import CliError

__all__ = [
    "add_collect_arguments",
    "nats_main",
    "nats_sinks",
    "nats_sources",
    "split_nats_listen",
]


def _import() -> Any:
    """`syslogkit.collector.nats`, with nats-py present (else a one-line `CliError`)."""
    from syslogkit.collector import nats

    try:
        nats.require_nats()
    except nats.NatsUnavailable as exc:
        raise CliError(str(exc)) from None
    return nats


def _connection_arguments(group: Any, prefix: str) -> None:
    group.add_argument(f"--{prefix}creds", metavar="FILE", help="NATS .creds file (JWT + nkey)")
    group.add_argument(f"--{prefix}nkey", metavar="FILE", help="NATS nkey seed file")
    group.add_argument(f"--{prefix}ca", metavar="PEM", help="CA of the NATS servers (TLS)")
    group.add_argument(f"--{prefix}cert", metavar="PEM", help="client certificate for NATS")
    group.add_argument(f"--{prefix}key", metavar="PEM", help="its private key")


def _options(servers: str | None, args: argparse.Namespace, prefix: str) -> Any:
    nats = _import()
    spec = servers or os.environ.get("NATS_URL") or "nats://127.0.0.1:4222"
    # a config file's credentials (cli/settings.py): never on a command line, never printed
    user, password, token = (getattr(args, prefix + k, None) for k in ("user", "password", "token"))
    for name in ("creds", "nkey", "ca", "cert", "key"):
        path = getattr(args, prefix + name)
        if path and not Path(path).is_file():
            raise CliError(f"no such file: {path}")
    try:
        return nats.NatsOptions(
            nats.server_urls(spec),
            creds_file=getattr(args, prefix + "creds"),
            nkey_file=getattr(args, prefix + "nkey"),
            ca_file=getattr(args, prefix + "ca"),
            cert_file=getattr(args, prefix + "cert"),
            key_file=getattr(args, prefix + "key"),
            token=token.reveal() if token else None,
            user=user,
            password=password.reveal() if password else None,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None


# -- syslogkit collect --------------------------------------------------------------------------


def add_collect_arguments(p: argparse.ArgumentParser) -> None:
    """The `--nats*` options of `syslogkit collect`."""
    g = p.add_argument_group(
        "NATS JetStream (docs/scale-out.md): an edge publishes with --nats, a store reads with"
        " -l nats://URL[,URL]"
    )
    g.add_argument(
        "--nats",
        metavar="URL[,URL]",
        help="publish what is received to JetStream (servers of one cluster); no local store"
        " unless --db is given",
    )
    g.add_argument("--nats-stream", default="SYSLOG", metavar="NAME", help="default SYSLOG")
    g.add_argument(
        "--nats-subject-prefix", default="syslog", metavar="PREFIX", help="default syslog"
    )
    g.add_argument(
        "--nats-durable", default="syslogkit-store", metavar="NAME",
        help="the store's durable consumer: stores sharing one share the work",
    )  # fmt: skip
    g.add_argument(
        "--nats-ack-wait", default="30s", metavar="DURATION",
        help="a store's unacknowledged messages are redelivered after this",
    )  # fmt: skip
    g.add_argument(
        "--nats-spool", metavar="DIR",
        help="edge: keep batches on disk here when memory is full (default: none)",
    )  # fmt: skip
    g.add_argument("--nats-memory", default="64M", metavar="SIZE", help="edge: memory buffer")
    g.add_argument("--nats-spool-size", default="1G", metavar="SIZE", help="edge: spool bound")
    _connection_arguments(g, "nats-")


def split_nats_listen(listen: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the other listener URLs, the nats:// ones)."""
    from syslogkit.collector.nats import is_nats_url

    nats = [u for u in listen if is_nats_url(u)]
    return [u for u in listen if not is_nats_url(u)], nats


def nats_sinks(args: argparse.Namespace) -> list[Any]:
    """The edge's JetStream sink when `--nats` is given."""
    if not args.nats:
        return []
    from syslogkit.cli.forms import parse_size

    nats = _import()
    options = _options(args.nats, args, "nats_")
    try:
        return [
            nats.JetStreamSink(
                options,
                stream=args.nats_stream,
                subject_prefix=args.nats_subject_prefix,
                spool_dir=args.nats_spool,
                max_memory=parse_size(args.nats_memory),
                max_spool=parse_size(args.nats_spool_size),
            )
        ]
    except OSError as exc:
        raise CliError(str(exc)) from None


def nats_sources(args: argparse.Namespace, urls: Sequence[str], db_path: str | None) -> list[Any]:
    """A durable-consumer source per `-l nats://...` (the servers of one cluster each)."""
    if not urls:
        return []
    from syslogkit.cli.forms import parse_duration

    nats = _import()
    sources = []
    for url in urls:
        spec = url.replace("nats+tls://", "tls://")
        sources.append(
            nats.JetStreamSource(
                _options(spec, args, "nats_"),
                stream=args.nats_stream,
                durable=args.nats_durable,
                subject_prefix=args.nats_subject_prefix,
                ack_wait=parse_duration(args.nats_ack_wait),
                holds=nats.store_check(db_path) if db_path else None,
            )
        )
    return sources


# -- syslogkit nats -----------------------------------------------------------------------------

NATS_EPILOG = """examples:
  syslogkit nats init                                   # SYSLOG on nats://127.0.0.1:4222
  syslogkit nats init -s nats://n1:4222,nats://n2:4222,nats://n3:4222 --replicas 3 \\
                      --max-age 30d --max-size 200G
Run again with other values to update the stream (JetStream refuses some changes, such as
the storage type)."""


def _nats_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="syslogkit nats",
        description="Set up the NATS JetStream stream between edge collectors and stores.",
        epilog=NATS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="create or update the stream")
    init.add_argument(
        "-s", "--server", metavar="URL[,URL]",
        help="NATS servers (default $NATS_URL or nats://127.0.0.1:4222)",
    )  # fmt: skip
    init.add_argument("--stream", default="SYSLOG", metavar="NAME")
    init.add_argument("--subject-prefix", default="syslog", metavar="PREFIX")
    init.add_argument("--replicas", type=int, default=1, help="1, or 3 on a cluster (max 5)")
    init.add_argument("--max-age", default="7d", metavar="DURATION", help="0: no age limit")
    init.add_argument("--max-size", metavar="SIZE", help="keep the stream under SIZE (50G)")
    init.add_argument("--duplicate-window", default="2m", metavar="DURATION")
    init.add_argument("--memory", action="store_true", help="memory storage (default: file)")
    _connection_arguments(init, "")
    return p


def nats_main(argv: Sequence[str]) -> int:
    """`syslogkit nats init`: create or update the stream; print what it is now."""
    from syslogkit.cli.forms import parse_duration, parse_size

    args = _nats_parser().parse_args(list(argv))
    nats = _import()
    options = _options(args.server, args, "")
    options.forever = False
    if not 1 <= args.replicas <= 5:
        raise CliError("--replicas must be 1 to 5")
    settings = nats.StreamSettings(
        name=args.stream,
        subject_prefix=args.subject_prefix,
        replicas=args.replicas,
        max_age=parse_duration(args.max_age) or None,
        max_bytes=parse_size(args.max_size) if args.max_size else None,
        duplicate_window=parse_duration(args.duplicate_window),
        memory=args.memory,
    )
    try:
        done, config = asyncio.run(asyncio.wait_for(nats.ensure_stream(options, settings), 60))
    except asyncio.TimeoutError:
        raise CliError(f"no answer from JetStream at {options.describe()} in 60 s") from None
    except Exception as exc:
        raise CliError(nats.redact(f"{type(exc).__name__}: {exc}")) from None
    age = f"{config['max_age']:g}s" if config["max_age"] else "unlimited"
    size = (
        f"{config['max_bytes']} bytes"
        if config["max_bytes"] and config["max_bytes"] > 0
        else "unlimited"
    )
    full = (
        "refuse new messages (edges hold them)"
        if config["discard"] == "new"
        else "delete the oldest"
    )
    print(
        f"{done} stream {config['name']} on {options.describe()}: subjects"
        f" {','.join(config['subjects'])}, {config['replicas']} replica(s), {config['storage']}"
        f" storage, max age {age}, max size {size}, duplicate window"
        f" {config['duplicate_window']:g}s, when full: {full}",
        file=sys.stdout,
    )
    return 0
