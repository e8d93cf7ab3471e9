"""`syslogkit send`: a logger(1) for every transport, built on SyslogHandler."""

from __future__ import annotations

import argparse
import logging
import select
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from typing import Any

from syslogkit.cli.main import CliError
from syslogkit.codec.message import Facility, SDElement, Severity
from syslogkit.transports.schemes import SCHEMES

DEFAULT_ADDRESS = "tcp://127.0.0.1:5514"
#: seconds a stream is watched after the last write for the collector closing or resetting it
RESET_WAIT = 0.25

EXAMPLES = f"""examples:
  syslogkit send "disk almost full"                       # to {DEFAULT_ADDRESS}
  syslogkit send -a udp://logs.example:514 -p local3.err -t backup "job failed"
  syslogkit send --sd 'job@32473 id="42" state="done"' --msgid JOB "finished"
  syslogkit send -a tls://logs.example:6514 --ca-file pki/ca.pem \\
                 --cert-file pki/client.pem --key-file pki/client-key.pem "over mutual TLS"
  journalctl -f | syslogkit send -t journal                # one message per stdin line

The exit status is 0 when every message was delivered, 1 when some were not, 2 on a usage
error. "Delivered" over plain TCP (and TLS, unix streams) means written to the connection,
at best acknowledged by the collector's kernel: a collector that closes the connection without
reading the bytes (one refusing connections over its limits) loses them. send waits a moment
after its last write and exits 1 when the collector closed or reset the connection then; a
later close goes unseen. Over UDP delivered means sent. Where every message must be known
stored, use relp://: the collector answers each one after storing it."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syslogkit send",
        description="Send syslog messages, like logger(1), over UDP, TCP, TLS, RELP or a "
        "unix socket. Messages come from the arguments, else from standard input, one per line.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("message", nargs="*", help="the message (words are joined by spaces)")
    parser.add_argument(
        "-a",
        "--address",
        default=DEFAULT_ADDRESS,
        help=f"udp:// tcp:// tls:// relp://HOST:PORT or unix:///PATH (default {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "-p",
        "--priority",
        default="user.notice",
        help="facility.severity as logger(1) names them (default user.notice)",
    )
    parser.add_argument("-t", "--tag", help="APP-NAME / TAG (default: your login name)")
    parser.add_argument("-i", "--procid", help="PROCID (default: this process's pid)")
    parser.add_argument("--hostname", help="HOSTNAME (default: this machine's name)")
    parser.add_argument("--msgid", help="MSGID (RFC 5424)")
    parser.add_argument(
        "--sd",
        action="append",
        default=[],
        metavar="'ID K=\"V\" ...'",
        help="a structured data element, e.g. 'id@32473 key=\"v\"' (repeatable)",
    )
    rfc = parser.add_mutually_exclusive_group()
    rfc.add_argument("--rfc5424", dest="rfc", action="store_const", const="5424")
    rfc.add_argument("--rfc3164", dest="rfc", action="store_const", const="3164")
    parser.add_argument(
        "--framing", default="octet", help="octet (default), lf, nul or crlf, on streams"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per network step")
    parser.add_argument(
        "--spool-dir",
        help="standard input: keep lines on disk while the collector is unreachable "
        "(replayed in order, also by the next run)",
    )
    parser.add_argument(
        "--block-timeout",
        type=float,
        default=2.0,
        help="standard input: seconds a line may wait for room while the collector is slow",
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--ca-file", help="CA certificates to verify the collector with")
    tls.add_argument("--cert-file", help="client certificate (mutual TLS)")
    tls.add_argument("--key-file", help="client key (mutual TLS)")
    tls.add_argument("--server-hostname", help="name to check in the collector's certificate")
    tls.add_argument(
        "--fingerprint", help="pin the collector's certificate, e.g. SHA256:AB:CD:... or sha-256:.."
    )
    tls.add_argument(
        "--no-verify-hostname", action="store_true", help="do not check the collector's name"
    )
    return parser


def parse_priority(text: str) -> tuple[Facility, Severity]:
    """`local3.err` (or a number, as logger(1) accepts) -> facility and severity."""
    if text.isdigit():
        pri = int(text)
        if pri > 191:
            raise CliError(f"priority {pri} is out of range (0..191)")
        return Facility(pri >> 3), Severity(pri & 7)
    facility, dot, severity = text.partition(".")
    try:
        if not dot:
            return Facility.USER, Severity.coerce(facility)
        return Facility.coerce(facility), Severity.coerce(severity)
    except ValueError as exc:
        raise CliError(f"bad priority {text!r}: {exc}") from None


def parse_sd(texts: list[str]) -> tuple[SDElement, ...]:
    """SD elements written as on the wire without brackets, parsed by the RFC 5424 parser."""
    if not texts:
        return ()
    from syslogkit.codec.message import ParseError
    from syslogkit.codec.rfc5424 import parse_5424

    head = "<13>1 - - - - - "
    wire = head + "".join(f"[{text.strip().strip('[]')}]" for text in texts)
    try:
        return parse_5424(wire.encode(), mode="strict").structured_data
    except ParseError as exc:
        column = max(exc.column - len(head), 1)
        raise CliError(f"bad --sd {texts!r}: {exc.reason} at column {column}") from None


def _messages(words: list[str]) -> Iterator[str]:
    if words:
        yield " ".join(words)
        return
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if line:
            yield line


def _delivery(args: argparse.Namespace) -> dict[str, Any]:
    """Messages in the arguments go out in the call (sync, as logger(1)); standard input goes
    through the background queue with the handler's rules (back-pressure bounded by
    --block-timeout, no waiting on a dead collector, --spool-dir, a bounded wait at the end).
    Nothing is shed: every line a pipe hands over counts the same. RELP is always background."""
    if args.message and not args.address.startswith("relp"):
        return {"delivery": "sync"}
    if args.address.startswith("unix") and not args.message:
        return {"delivery": "sync"}
    options: dict[str, Any] = {
        "delivery": "background",
        "block_timeout": args.block_timeout,
        "shed_below": None,
    }
    if args.spool_dir:
        options["spool_dir"] = args.spool_dir
    return options


def _handler(args: argparse.Namespace) -> Any:
    from syslogkit.delivery.base import DeliveryNotice
    from syslogkit.sender.handler import SyslogHandler

    class SendHandler(SyslogHandler):
        """Only the notices of records dropped while lines are still coming are shown: errors
        and the delivery's final line are summed up in `send`'s own last line."""

        def _report(self, exc: BaseException, record: logging.LogRecord | None) -> None:
            if isinstance(exc, DeliveryNotice) and not exc.final:
                exc.show()

    try:
        return SendHandler(
            args.address,
            app_name=args.tag if args.tag is not None else _login_name(),
            hostname=args.hostname,
            procid=args.procid,
            rfc=args.rfc,
            framing=args.framing,
            timeout=args.timeout,
            ca_file=args.ca_file,
            cert_file=args.cert_file,
            key_file=args.key_file,
            server_hostname=args.server_hostname,
            verify_hostname=not args.no_verify_hostname,
            fingerprint=args.fingerprint,
            **_delivery(args),
        )
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None


def _closed_after_write(handler: Any, address: str) -> bool:
    """Whether the collector closed or reset the stream within `RESET_WAIT` seconds of the
    last write: what it had not read is lost, though TCP acknowledged it (RELP answers for
    itself; datagrams cannot tell)."""
    from syslogkit.delivery.background import BackgroundDelivery
    from syslogkit.delivery.sync import SyncDelivery

    delivery = handler.delivery
    if address.startswith("relp") or not isinstance(delivery, SyncDelivery | BackgroundDelivery):
        return False
    sock = delivery.transport.sock if delivery.transport.stream else None
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    deadline = time.monotonic() + RESET_WAIT
    for _ in range(8):  # readable without a close: a TLS 1.3 ticket, or a talking peer
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000.0):
            return False
        if _peer_closed(sock):
            return True
    return False


def _peer_closed(sock: socket.socket) -> bool:
    """True on EOF or a reset; False when what was readable was not a close."""
    try:
        return not sock.recv(4096)
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "syslogkit"


def send_main(argv: list[str]) -> int:
    """Entry point of `syslogkit send`."""
    args = _parser().parse_args(argv)
    facility, severity = parse_priority(args.priority)
    sd = parse_sd(args.sd)
    handler = _handler(args)
    handler.setFormatter(logging.Formatter("%(message)s"))
    count = 0
    try:
        for text in _messages(args.message):
            record = logging.makeLogRecord(
                {
                    "msg": text,
                    "levelno": logging.INFO,
                    "levelname": "INFO",
                    "facility": facility,
                    "severity": severity,
                    "msgid": args.msgid,
                    "structured_data": sd,
                }
            )
            handler.handle(record)
            count += 1
        handler.flush()
        closed = count > 0 and _closed_after_write(handler, args.address)
    finally:
        handler.close()
    relp = SCHEMES[handler.address.scheme].relp
    summary = _summary(count, handler.stats, str(handler.address), relp=relp)
    if summary is not None:
        print(summary, file=sys.stderr)
        return 1
    if closed:
        print(
            "syslogkit send: the collector closed the connection right after the last write: "
            "what it had not read is lost (TCP cannot tell how much; relp:// can)",
            file=sys.stderr,
        )
        return 1
    return 0


def _summary(count: int, stats: dict[str, Any], address: str, *, relp: bool) -> str | None:
    """The one line that tells what was not delivered, with the final counts and reasons;
    None when every message was (over RELP: acknowledged, a refused one is not)."""
    from syslogkit.delivery.caller import dropped_by_reason

    delivered = int(stats.get("acknowledged", 0) if relp else stats.get("sent", 0))
    if stats.get("spooled"):
        delivered += int(stats["spooled"]) - int(stats.get("replayed", 0))  # kept on disk
    if delivered >= count:
        return None
    details = []
    dropped = int(stats.get("dropped", 0))
    if dropped:
        details.append(f"dropped {dropped}: {dropped_by_reason(stats)}")
    unconfirmed = count - delivered - dropped
    if unconfirmed > 0:
        details.append(f"{unconfirmed} sent but never confirmed")
    if stats.get("last_error"):
        details.append(f"last error: {stats['last_error']}")
    return (
        f"syslogkit send: {count - delivered} of {count} not delivered to {address} "
        f"({'; '.join(details) or 'not delivered'})"
    )
