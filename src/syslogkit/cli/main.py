"""The `syslogkit` command: collect, send, tail, query, certs, demo.

Each subcommand lives in its own module and is imported only when used, so `syslogkit send`
starts fast and `certs`/`demo` can say in one line that they need the `[cli]` extra.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["CliError", "main"]

#: subcommand -> (module, function, one-line summary)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "collect": ("syslogkit.cli.collect", "collect_main", "receive syslog and store it"),
    "send": ("syslogkit.cli.send", "send_main", "send a message, like logger(1)"),
    "tail": ("syslogkit.cli.read", "tail_main", "follow the messages in a store"),
    "query": ("syslogkit.cli.read", "query_main", "search the messages in a store"),
    "certs": ("syslogkit.cli.certs", "certs_main", "make a CA and certificates for mutual TLS"),
    "demo": ("syslogkit.cli.demo", "demo_main", "a collector and an app logging over UDP/TCP/TLS"),
    "web": ("syslogkit.cli.web", "web_main", "look at a store in a browser (needs [web])"),
    "nats": ("syslogkit.cli.nats", "nats_main", "set up the JetStream stream between collectors"),
}

EPILOG = """examples:
  syslogkit collect                       # UDP and TCP on 127.0.0.1:5514 into ./syslog.db
  syslogkit send "hello"                  # to the collector above
  syslogkit query --db syslog.db --json
  syslogkit certs --out pki/ --server-name logs.example.com
  syslogkit demo

Run 'syslogkit COMMAND --help' for each command's options."""


class CliError(Exception):
    """A user's mistake or an unmet precondition: printed as one line, exit status 2."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syslogkit",
        description="Send, collect and read syslog (RFC 5424 / RFC 3164).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, _function, summary) in COMMANDS.items():
        sub.add_parser(name, help=summary, add_help=False)
    return parser


def _version() -> str:
    from syslogkit._version import __version__

    return f"syslogkit {__version__}"


def _resolve(name: str) -> Callable[[list[str]], int]:
    module_name, function_name, _summary = COMMANDS[name]
    module = importlib.import_module(module_name)
    function: Callable[[list[str]], int] = getattr(module, function_name)
    return function


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    if not args or args[0] not in COMMANDS:
        parser.parse_args(args)  # prints help/version or the usage error, and exits
        parser.print_help()
        return 2
    try:
        return _resolve(args[0])(args[1:])
    except CliError as exc:
        print(f"syslogkit {args[0]}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
