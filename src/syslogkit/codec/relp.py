"""RELP, rsyslog's acknowledged syslog transport, as sans-I/O state machines.

RELP (librelp's ``doc/relp.md``) sends each syslog message as a command that the server answers
with an ``rsp`` carrying the same transaction number (TXNR), so a sender knows which messages
arrived. Bytes go in through ``receive_data()``, events come out, bytes to write come from
``data_to_send()``; the client transport and the collector drive these classes and own the
sockets, timers and reconnects.

Frame: ``TXNR SP COMMAND SP DATALEN [SP DATA] LF`` with TXNR 1..999999999 (then 1 again; 0 only
for the ``serverclose`` hint), COMMAND 1..32 letters, DATALEN the octets of DATA.

Interop (librelp 1.11 / rsyslog imrelp): both sides offer ``relp_version=0``; the server answers
``close`` with an empty ``rsp`` and then the hint ``0 serverclose 0``; answers go out in the order
the commands came in. Delivery is at-least-once: whatever is unacknowledged when a connection is
lost (`RelpClient.unacked`) is sent again on the next session.

One module although over 500 lines: the frame parser, the events and the two state machines are
one protocol whose sides must agree byte for byte (the offers, the close handshake, the TXNR
rules); h11 keeps its connection state the same way. Split, each half would import the other's
private rules.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Final, NamedTuple

from syslogkit._version import __version__

__all__ = [
    "DEFAULT_MAX_DATA",
    "DEFAULT_WINDOW",
    "MAX_TXNR",
    "RELP_VERSION",
    "Acked",
    "CloseRequested",
    "Closed",
    "MessageReceived",
    "OpenFailed",
    "OpenRequested",
    "ProtocolViolation",
    "Refused",
    "RelpClient",
    "RelpClientEvent",
    "RelpFrame",
    "RelpParser",
    "RelpProtocolError",
    "RelpServer",
    "RelpServerEvent",
    "RelpStateError",
    "ServerClose",
    "SessionOpened",
    "encode_frame",
    "next_txnr",
    "parse_offers",
    "parse_rsp",
]

MAX_TXNR: Final = 999_999_999
#: librelp's maximum DATA size.
DEFAULT_MAX_DATA: Final = 128 * 1024
#: librelp's default window of unacknowledged commands.
DEFAULT_WINDOW: Final = 128
#: The RELP version librelp offers and expects (although its text calls itself version 1).
RELP_VERSION: Final = 0
_KNOWN_VERSIONS: Final = frozenset({RELP_VERSION})
_URL: Final = "https://pypi.org/project/syslogkit/"

Offers = tuple[tuple[str, str], ...]

_COMMAND_RE: Final = re.compile(r"[A-Za-z]{1,32}")
_HEADER_RE: Final = re.compile(rb"(\d{1,9}) ([A-Za-z]{1,32}) (\d{1,9})([ \n])")
# Every proper prefix of a header: what may still become one when more bytes arrive.
_HEADER_PREFIX_RE: Final = re.compile(rb"\d{0,9}(?: [A-Za-z]{0,32}(?: \d{0,9})?)?")
_HEADER_MAX: Final = 9 + 1 + 32 + 1 + 9 + 1


class RelpProtocolError(ValueError):
    """Malformed RELP from the peer; the session must be closed.

    `frames` holds the well-formed frames decoded before the fault in the same `feed()` call.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frames: list[RelpFrame] = []


class RelpStateError(RuntimeError):
    """An operation the session's state does not allow (send before open, window full, ...)."""


class RelpFrame(NamedTuple):
    """One RELP frame."""

    txnr: int
    command: str
    data: bytes


def next_txnr(txnr: int) -> int:
    """The TXNR after `txnr`: 999999999 wraps to 1."""
    return 1 if txnr >= MAX_TXNR else txnr + 1


def encode_frame(txnr: int, command: str, data: bytes = b"") -> bytes:
    """``TXNR SP COMMAND SP DATALEN [SP DATA] LF``."""
    if not 0 <= txnr <= MAX_TXNR:
        raise ValueError(f"TXNR {txnr} outside 0..{MAX_TXNR}")
    if not _COMMAND_RE.fullmatch(command):
        raise ValueError(f"RELP command {command!r} is not 1..32 letters")
    if data:
        return b"%d %s %d %s\n" % (txnr, command.encode("ascii"), len(data), data)
    return b"%d %s 0\n" % (txnr, command.encode("ascii"))


class RelpParser:
    """Incremental RELP frame decoder: bytes in, `RelpFrame` out.

    `feed()` raises `RelpProtocolError` on a malformed header, a DATALEN over `max_data` or a
    missing LF trailer; the parser then stays failed (RELP closes the session on any framing
    error). Work is linear in the bytes fed however they are split.
    """

    __slots__ = ("_buf", "_error", "_header", "max_data")

    def __init__(self, max_data: int = DEFAULT_MAX_DATA) -> None:
        if max_data < 0:
            raise ValueError("max_data must not be negative")
        self.max_data = max_data
        self._buf = bytearray()
        self._header: tuple[int, str, int] | None = None
        self._error: RelpProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Octets held until their frame is complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[RelpFrame]:
        """The frames `data` completes."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        frames: list[RelpFrame] = []
        pos = 0
        try:
            while True:
                header = self._header
                if header is None:
                    if pos >= len(buf):
                        break
                    m = _HEADER_RE.match(buf, pos)
                    if m is None:
                        if len(buf) - pos < _HEADER_MAX and _HEADER_PREFIX_RE.fullmatch(buf, pos):
                            break  # a header still arriving
                        shown = bytes(buf[pos : pos + _HEADER_MAX])
                        raise RelpProtocolError(f"malformed RELP frame header {shown!r}")
                    txnr = int(m[1])
                    command = m[2].decode("ascii")
                    datalen = int(m[3])
                    if datalen > self.max_data:
                        raise RelpProtocolError(
                            f"DATALEN {datalen} of {command!r} frame {txnr} exceeds "
                            f"the limit of {self.max_data}"
                        )
                    pos = m.end()
                    if m[4] == b"\n":
                        if datalen:
                            raise RelpProtocolError(
                                f"frame {txnr} announces {datalen} octets but has no DATA"
                            )
                        frames.append(RelpFrame(txnr, command, b""))
                        continue
                    header = self._header = (txnr, command, datalen)
                txnr, command, datalen = header
                if len(buf) - pos <= datalen:
                    break
                if buf[pos + datalen] != 0x0A:
                    raise RelpProtocolError(
                        f"frame {txnr} ({command}) does not end with LF after {datalen} octets"
                    )
                frames.append(RelpFrame(txnr, command, bytes(buf[pos : pos + datalen])))
                pos += datalen + 1
                self._header = None
        except RelpProtocolError as exc:
            exc.frames = frames
            self._error = exc
            buf.clear()
            raise
        del buf[:pos]
        return frames


def parse_offers(data: bytes) -> Offers:
    """``name[=value]`` lines as (name, value) pairs in order (value "" when absent)."""
    offers = []
    for line in data.decode("utf-8", "replace").split("\n"):
        line = line.rstrip("\r")
        if line:
            name, _, value = line.partition("=")
            offers.append((name, value))
    return tuple(offers)


def _offer(offers: Offers, name: str) -> str | None:
    for key, value in offers:
        if key == name:
            return value
    return None


def _encode_offers(offers: Offers) -> bytes:
    return "\n".join(f"{k}={v}" if v else k for k, v in offers).encode("utf-8")


def parse_rsp(data: bytes) -> tuple[int, str, bytes]:
    """``RSP-CODE [SP HUMANMSG] LF [CMDDATA]`` as (code, text, cmddata)."""
    line, _, cmddata = data.partition(b"\n")
    code, _, text = line.partition(b" ")
    if len(code) != 3 or not code.isdigit():
        raise RelpProtocolError(f"rsp without a 3-digit code: {bytes(data[:40])!r}")
    return int(code), text.decode("utf-8", "replace"), cmddata


def _commands(offers: Offers) -> set[str]:
    value = _offer(offers, "commands")
    return set() if value is None else {c.strip() for c in value.split(",")}


def _default_software() -> str:
    return f"syslogkit,{__version__},{_URL}"


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class SessionOpened:
    """The server accepted the session; `offers` are the ones it answered with."""

    offers: Offers


@dataclass(frozen=True, slots=True)
class OpenFailed:
    """The server answered ``open`` with an error code: close, back off, retry."""

    code: int
    text: str


@dataclass(frozen=True, slots=True)
class Acked:
    """The server took the message sent with `txnr`."""

    txnr: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The server answered the message sent with `txnr` with an error (it will not take it)."""

    txnr: int
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class ServerClose:
    """The server's ``serverclose`` hint: it is closing; unacked messages go to a new session."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The server answered our ``close``: the session is over, the connection may be closed."""


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The peer broke the protocol: close the connection (and, as a client, re-send unacked)."""

    reason: str


@dataclass(frozen=True, slots=True)
class OpenRequested:
    """A client opened a session with these offers (already answered)."""

    offers: Offers


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A syslog message; answer it with `RelpServer.ack(txnr, ...)`."""

    txnr: int
    message: bytes


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """The client closes the session (answered once every earlier command is answered)."""

    txnr: int


RelpClientEvent = (
    SessionOpened | OpenFailed | Acked | Refused | ServerClose | Closed | ProtocolViolation
)
RelpServerEvent = OpenRequested | MessageReceived | CloseRequested | ProtocolViolation


# ---------------------------------------------------------------------------------------------
# Client


class RelpClient:
    """The sending side of one RELP session (one connection).

    ``open()`` gives the bytes that open the session; after `SessionOpened`, ``send(message)``
    queues a message while `can_send` (session open, fewer than `window` unacknowledged) and
    returns its TXNR; ``data_to_send()`` drains the bytes to write; ``receive_data()`` turns the
    server's bytes into events. ``close()`` ends the session politely. When the connection is
    lost, `unacked()` lists, in order, the messages to send again on a new session.

    States: ``idle`` -> ``opening`` -> ``open`` -> ``closing`` -> ``closed``; ``failed`` after a
    protocol violation or a refused open, ``server_closing`` after the server's hint.
    """

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        software: str | None = None,
        *,
        max_data: int = DEFAULT_MAX_DATA,
        initial_txnr: int = 1,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        if not 1 <= initial_txnr <= MAX_TXNR:
            raise ValueError(f"initial_txnr must be in 1..{MAX_TXNR}")
        self.window = window
        self.software = _default_software() if software is None else software
        self.max_data = max_data
        self.state = "idle"
        #: The offers the server answered ``open`` with.
        self.server_offers: Offers = ()
        self._parser = RelpParser(max(max_data, 64 * 1024))
        self._next = initial_txnr
        self._out = bytearray()
        self._unacked: dict[int, bytes] = {}
        self._open_txnr = 0
        self._close_txnr = 0

    def _take_txnr(self) -> int:
        txnr = self._next
        self._next = next_txnr(txnr)
        return txnr

    @property
    def can_send(self) -> bool:
        """True when `send()` would be accepted now."""
        return self.state == "open" and len(self._unacked) < self.window

    @property
    def buffered(self) -> int:
        """Octets of the server's next frame held until it is complete."""
        return self._parser.buffered

    @property
    def in_flight(self) -> int:
        """Messages sent and not yet answered."""
        return len(self._unacked)

    def open(self) -> bytes:
        """The ``open`` command offering relp_version=0, commands=syslog and relp_software."""
        if self.state != "idle":
            raise RelpStateError(f"open() in state {self.state!r}")
        offers: list[tuple[str, str]] = [("relp_version", str(RELP_VERSION))]
        if self.software:
            offers.append(("relp_software", self.software))
        offers.append(("commands", "syslog"))
        self._open_txnr = self._take_txnr()
        self.state = "opening"
        return encode_frame(self._open_txnr, "open", _encode_offers(tuple(offers)))

    def send(self, message: bytes) -> int:
        """Queue one syslog message; returns its TXNR. Raises `RelpStateError` unless can_send."""
        if self.state != "open":
            raise RelpStateError(f"cannot send in state {self.state!r}")
        if len(self._unacked) >= self.window:
            raise RelpStateError(f"window of {self.window} unacknowledged messages is full")
        if len(message) > self.max_data:
            raise ValueError(f"message of {len(message)} octets exceeds max_data {self.max_data}")
        txnr = self._take_txnr()
        self._out += encode_frame(txnr, "syslog", message)
        self._unacked[txnr] = bytes(message)
        return txnr

    def close(self) -> bytes:
        """Everything still queued, then the ``close`` command."""
        out = self.data_to_send()
        if self.state not in ("opening", "open"):
            return out
        self._close_txnr = self._take_txnr()
        self.state = "closing"
        return out + encode_frame(self._close_txnr, "close")

    def data_to_send(self) -> bytes:
        """The bytes queued by `send()` since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def unacked(self) -> list[tuple[int, bytes]]:
        """(txnr, message) of every message sent and not answered, in sending order."""
        return list(self._unacked.items())

    def connection_lost(self) -> list[tuple[int, bytes]]:
        """Mark the session dead; returns `unacked()` (to send again on a new session)."""
        self.state = "closed"
        self._out.clear()
        return self.unacked()

    def receive_data(self, data: bytes) -> list[RelpClientEvent]:
        """Events for the server's bytes."""
        events: list[RelpClientEvent] = []
        if self.state == "failed":
            return events
        error: RelpProtocolError | None = None
        try:
            frames = self._parser.feed(data)
        except RelpProtocolError as exc:
            frames, error = exc.frames, exc
        for relp_frame in frames:
            event = self._handle(relp_frame)
            if event is not None:
                events.append(event)
            if self.state == "failed":
                return events
        if error is not None:
            events.append(self._fail(error.reason))
        return events

    def _fail(self, reason: str) -> ProtocolViolation:
        self.state = "failed"
        return ProtocolViolation(reason)

    def _handle(self, relp_frame: RelpFrame) -> RelpClientEvent | None:
        txnr, command, data = relp_frame
        if command == "serverclose":
            if self.state not in ("closed", "failed"):
                self.state = "server_closing"
            return ServerClose()
        if command != "rsp":
            return self._fail(f"server sent command {command!r}")
        if self.state == "opening":
            if txnr != self._open_txnr:
                return self._fail(f"rsp {txnr} before the answer to open ({self._open_txnr})")
            return self._opened(data)
        if txnr in self._unacked:
            try:
                code, text, _ = parse_rsp(data)
            except RelpProtocolError as exc:
                return self._fail(exc.reason)
            del self._unacked[txnr]
            if code == 200:
                return Acked(txnr)
            return Refused(txnr, code, text)
        if self.state == "closing" and txnr == self._close_txnr:
            self.state = "closed"
            return Closed()
        if self.state == "closing" and txnr == self._open_txnr:
            return None  # closed while opening: the open answer no longer matters
        return self._fail(f"rsp for unknown TXNR {txnr}")

    def _opened(self, data: bytes) -> RelpClientEvent:
        try:
            code, text, cmddata = parse_rsp(data)
        except RelpProtocolError as exc:
            return self._fail(exc.reason)
        if code != 200:
            self.state = "failed"
            return OpenFailed(code, text)
        offers = parse_offers(cmddata)
        version = _offer(offers, "relp_version")
        if version is None:
            return self._fail("server's open answer lacks relp_version")
        if not version.isdigit() or int(version) not in _KNOWN_VERSIONS:
            return self._fail(f"server offers relp_version {version!r}; known: 0")
        if "syslog" not in _commands(offers):
            return self._fail("server does not accept the syslog command")
        self.server_offers = offers
        self.state = "open"
        return SessionOpened(offers)


# ---------------------------------------------------------------------------------------------
# Server


class _Answer:
    __slots__ = ("after", "data", "txnr")

    def __init__(self, txnr: int, data: bytes | None = None, after: bytes = b"") -> None:
        self.txnr = txnr
        self.data = data
        self.after = after


_SERVERCLOSE: Final = encode_frame(0, "serverclose")


class RelpServer:
    """The receiving side of one RELP session (one connection).

    ``receive_data()`` gives events: `OpenRequested` (answered automatically with relp_version=0
    and commands=syslog), `MessageReceived` (answer with ``ack(txnr, ok, text)``),
    `CloseRequested` (answered with an empty ``rsp`` and the ``serverclose`` hint once every
    earlier command is answered), `ProtocolViolation` (close the connection). Answers leave in the
    order the commands arrived: an ack given out of order is held until those before it are
    given. ``close()`` sends the ``serverclose`` hint; ``data_to_send()`` drains what to write.
    """

    def __init__(
        self,
        software: str | None = None,
        *,
        max_data: int = DEFAULT_MAX_DATA,
    ) -> None:
        self.software = _default_software() if software is None else software
        self.max_data = max_data
        self.state = "idle"
        self.client_offers: Offers = ()
        self._parser = RelpParser(max_data)
        self._out = bytearray()
        self._queue: deque[_Answer] = deque()
        self._waiting: dict[int, _Answer] = {}
        self._expected: int | None = None

    @property
    def buffered(self) -> int:
        """Octets of the client's next frame held until it is complete."""
        return self._parser.buffered

    @property
    def unanswered(self) -> int:
        """Commands received and not yet answered on the wire."""
        return len(self._queue)

    def data_to_send(self) -> bytes:
        """The answers (and hints) ready to be written."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def ack(self, txnr: int, ok: bool = True, text: str = "OK") -> None:
        """Answer message `txnr`: ``200 text`` when ok, else ``500 text``."""
        if self.state in ("closed", "failed"):
            return
        entry = self._waiting.pop(txnr, None)
        if entry is None:
            raise ValueError(f"TXNR {txnr} is not a message awaiting an answer")
        if "\n" in text:
            raise ValueError("rsp text must not contain LF")
        entry.data = b"%d %s" % (200 if ok else 500, text.encode("utf-8"))
        self._flush()

    def close(self) -> bytes:
        """Everything ready to send, then the ``serverclose`` hint; the session ends."""
        if self.state in ("closed", "failed"):
            return self.data_to_send()
        self.state = "closed"
        self._waiting.clear()
        self._queue.clear()
        self._out += _SERVERCLOSE
        return self.data_to_send()

    def _flush(self) -> None:
        queue = self._queue
        while queue and queue[0].data is not None:
            entry = queue.popleft()
            self._out += encode_frame(entry.txnr, "rsp", entry.data or b"")
            if entry.after:
                self._out += entry.after
                self.state = "closed"

    def _answer_now(self, txnr: int, data: bytes, after: bytes = b"") -> None:
        self._queue.append(_Answer(txnr, data, after))
        self._flush()

    def receive_data(self, data: bytes) -> list[RelpServerEvent]:
        """Events for the client's bytes."""
        events: list[RelpServerEvent] = []
        if self.state in ("closed", "failed"):
            return events
        error: RelpProtocolError | None = None
        try:
            frames = self._parser.feed(data)
        except RelpProtocolError as exc:
            frames, error = exc.frames, exc
        for relp_frame in frames:
            event = self._handle(relp_frame)
            if event is not None:
                events.append(event)
            if self.state == "failed":
                return events
        if error is not None:
            events.append(self._fail(error.reason))
        return events

    def _fail(self, reason: str) -> ProtocolViolation:
        self.state = "failed"
        self._waiting.clear()
        self._queue.clear()
        return ProtocolViolation(reason)

    def _handle(self, relp_frame: RelpFrame) -> RelpServerEvent | None:
        txnr, command, data = relp_frame
        if self.state in ("closing", "closed"):
            return self._fail(f"command {command!r} after close")
        if txnr == 0 or (self._expected is not None and txnr != self._expected):
            return self._fail(f"TXNR {txnr} out of sequence (expected {self._expected})")
        self._expected = next_txnr(txnr)
        if self.state == "idle":
            if command != "open":
                return self._fail(f"first command is {command!r}, not open")
            return self._open(txnr, data)
        if command == "syslog":
            entry = _Answer(txnr)
            self._queue.append(entry)
            self._waiting[txnr] = entry
            return MessageReceived(txnr, data)
        if command == "close":
            self.state = "closing"
            self._answer_now(txnr, b"", _SERVERCLOSE)
            return CloseRequested(txnr)
        if command in ("open", "rsp", "serverclose"):
            return self._fail(f"client sent {command!r} in an open session")
        self._answer_now(txnr, b"500 command not supported")
        return None

    def _open(self, txnr: int, data: bytes) -> RelpServerEvent:
        offers = parse_offers(data)
        self.client_offers = offers
        if "syslog" not in _commands(offers):
            self._answer_now(txnr, b"500 required command syslog not offered", _SERVERCLOSE)
            self.state = "closed"
            return OpenRequested(offers)
        answer: list[tuple[str, str]] = [("relp_version", str(RELP_VERSION))]
        if self.software:
            answer.append(("relp_software", self.software))
        answer.append(("commands", "syslog"))
        self.state = "open"
        self._answer_now(txnr, b"200 OK\n" + _encode_offers(tuple(answer)))
        return OpenRequested(offers)
