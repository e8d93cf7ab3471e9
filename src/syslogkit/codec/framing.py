"""Stream framing for syslog over TCP, TLS and stream sockets (RFC 6587 §3.4, RFC 5425 §4.3).

Sans-I/O: `frame()` turns one encoded message into bytes for a stream, `FrameDecoder` turns the
bytes a stream delivers, in chunks split anywhere, back into frames. Nothing here touches a
socket, a thread or a clock. Kept as one module past 500 lines on purpose: the two
halves apply one set of rules (the escape alphabet, what counts as a count, the trailers), and
most of its length is this statement of them and the decoder's one state machine.

Sending (`frame`)
    ``"octet"`` (the default, and what RFC 5425 requires for TLS) prefixes the octet count:
    ``b"%d %s" % (len(payload), payload)``; every octet of the message travels as it is.

    ``"lf"``, ``"nul"``, ``"crlf"`` or a ``bytes`` trailer append a trailer (RFC 6587 §3.4.2). A
    delimiter must then never appear inside the message, so the octets receivers split or strip on
    (LF, CR, NUL) and the octets of a custom trailer are escaped as ``#`` plus three octal digits:
    LF becomes ``#012``, CR ``#015``, NUL ``#000``. That is exactly how rsyslog shows a control
    character it received (its ``escapeControlCharactersOnReceive`` default), so a multi-line
    message reads the same in rsyslog whether it came octet-counted or LF-framed, and other
    receivers show a recognisable marker instead of a line cut in two. The escaping is lossy (a
    literal ``#012`` in a message looks the same); use octet counting to keep line breaks. A
    custom trailer may not contain ``#`` or a digit, the escape alphabet.

Receiving (`FrameDecoder`)
    ``framing="auto"`` decides per frame (RFC 6587 §3.4.3 observes senders that switch): a frame
    that starts with ``NONZERO-DIGIT *DIGIT SP`` is octet-counted, anything else is delimited by
    LF, with NUL accepted as a delimiter too. A count above `max_count` (rsyslog's
    ``maxFrameSize``, 200000 by default) is taken as text, as rsyslog does ("change to octet
    stuffing"). ``"octet"``, ``"lf"`` and ``"nul"`` force one method; forced octet counting also
    accepts a zero-padded count (``08193``), which a forced framing makes unambiguous.

    - One trailing LF inside an octet-counted frame is dropped (rsyslog's forwarders count the LF
      that ends their template).
    - Before an LF delimiter one CR is dropped, so CRLF senders (RFC 6587 §3.4.2 mentions them)
      give clean frames; a CR anywhere else stays.
    - Empty frames (blank lines, ``1 \\n``) carry nothing and are skipped.
    - A frame longer than `max_frame` is returned truncated to `max_frame` octets as a
      `FramingError` with ``truncated=True`` (RFC 5424 §6.1: a receiver SHOULD truncate), as
      soon as those octets have arrived; the rest of that frame is skipped without being buffered,
      and the next frame is read normally.
    - In forced octet mode, bytes where a count must start are one bad frame up to the next LF or
      NUL (the only boundary left to trust), returned as a `FramingError` holding those bytes; a
      lone LF between frames is skipped silently.
    - `end()` returns what the stream left unfinished as a `FramingError` of kind
      ``"incomplete"`` holding the bytes received (a delimited frame without its trailer is
      complete and parses, and its reason names the trailer; an octet-counted frame that fell
      short is partial).

    Errors are values in the returned list, in stream order, never raised over the other frames;
    `FramingError.kind` tells them apart (``"oversize"``, ``"incomplete"``, ``"bad_count"``).
    The internal buffer never holds more than ``max_frame + 1`` octets (plus a partial count, as
    many digits as `max_count` has), and every octet is scanned a bounded number of times however
    the stream is split: `bytes_scanned` counts the octets examined, for tests.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "DEFAULT_MAX_COUNT",
    "DEFAULT_MAX_FRAME",
    "FrameDecoder",
    "FramingError",
    "frame",
]

DEFAULT_MAX_FRAME: Final = 8192
#: Largest octet count taken as a count in auto mode (rsyslog imtcp's ``maxFrameSize``).
DEFAULT_MAX_COUNT: Final = 200_000

_TRAILERS: Final = {"lf": b"\n", "nul": b"\0", "crlf": b"\r\n"}
_ALWAYS_ESCAPED: Final = frozenset(b"\n\r\0")
_FORBIDDEN_IN_TRAILER: Final = frozenset(b"#0123456789")


class FramingError(ValueError):
    """A frame the decoder could not deliver intact.

    `frame` holds the octets kept (truncated to `max_frame`, or what arrived before the stream
    ended), or None; `reason` says what went wrong; `truncated` is True when the frame was longer
    than `max_frame` and was cut. `kind` is one of ``"oversize"``, ``"incomplete"`` (the stream
    ended inside a frame) and ``"bad_count"`` (forced octet counting found no valid count).
    """

    OVERSIZE: Final = "oversize"
    INCOMPLETE: Final = "incomplete"
    BAD_COUNT: Final = "bad_count"

    def __init__(
        self,
        reason: str,
        frame: bytes | None = None,
        *,
        truncated: bool = False,
        kind: str = "bad_count",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frame = frame
        self.truncated = truncated
        self.kind = kind

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (self.reason, self.frame, self.truncated, self.kind))

    def __repr__(self) -> str:
        size = "None" if self.frame is None else f"{len(self.frame)} octets"
        return (
            f"FramingError({self.reason!r}, kind={self.kind!r}, truncated={self.truncated}, "
            f"frame={size})"
        )


def _rebuild_error(reason: str, frame: bytes | None, truncated: bool, kind: str) -> FramingError:
    return FramingError(reason, frame, truncated=truncated, kind=kind)


# ---------------------------------------------------------------------------------------------
# Sending


def _escape_base(payload: bytes) -> bytes:
    return payload.replace(b"\n", b"#012").replace(b"\r", b"#015").replace(b"\0", b"#000")


@lru_cache(maxsize=32)
def _trailer_escaper(trailer: bytes) -> re.Pattern[bytes]:
    if not trailer:
        raise ValueError("a custom trailer must not be empty")
    if _FORBIDDEN_IN_TRAILER.intersection(trailer):
        raise ValueError(
            f"trailer {trailer!r} contains '#' or a digit, which escaping (#ooo) and octet "
            "counting use; choose other octets"
        )
    octets = sorted(_ALWAYS_ESCAPED.union(trailer))
    return re.compile(b"[" + b"".join(b"\\x%02x" % o for o in octets) + b"]")


def _octal(match: re.Match[bytes]) -> bytes:
    return b"#%03o" % match.group()[0]


def frame(payload: bytes, framing: str | bytes = "octet") -> bytes:
    """Frame one encoded message for a stream.

    ``"octet"``: ``MSG-LEN SP payload`` (RFC 6587 §3.4.1, RFC 5425 §4.3). ``"lf"``, ``"nul"``,
    ``"crlf"`` or a ``bytes`` trailer: payload + trailer, with LF, CR, NUL and the trailer's octets
    escaped inside the payload as ``#ooo`` (see the module docs). The payload should start with
    ``<`` (a PRI), as formatted messages do: a delimited frame that started with digits and a
    space would look octet-counted to an auto-detecting receiver. An empty payload cannot be
    octet-counted (``0 `` is no MSG-LEN) and raises ValueError.
    """
    if framing == "octet":
        if payload:
            return b"%d %s" % (len(payload), payload)
        raise ValueError("an empty message cannot be octet-counted (MSG-LEN starts with 1..9)")
    if framing == "lf":
        if 0x0A in payload or 0x0D in payload or 0x00 in payload:
            payload = _escape_base(payload)
        return payload + b"\n"
    if isinstance(framing, str):
        trailer = _TRAILERS.get(framing)
        if trailer is None:
            raise ValueError(
                f"unknown framing {framing!r}: use 'octet', 'lf', 'nul', 'crlf' or a bytes trailer"
            )
        if 0x0A in payload or 0x0D in payload or 0x00 in payload:
            payload = _escape_base(payload)
        return payload + trailer
    if not isinstance(framing, (bytes, bytearray)):
        raise TypeError(f"framing must be a str or bytes, not {type(framing).__name__}")
    trailer = bytes(framing)
    return _trailer_escaper(trailer).sub(_octal, payload) + trailer


# ---------------------------------------------------------------------------------------------
# Receiving

_HEADER: Final = 0  # at a frame start (self._head may hold a partial count)
_BODY: Final = 1  # inside an octet-counted frame
_DELIM: Final = 2  # inside a delimited frame (or a forced-octet bad frame)
_SKIP: Final = 3  # skipping the rest of an oversize delimited frame

_MODES: Final = ("auto", "octet", "lf", "nul")


class FrameDecoder:
    """Incremental splitter of a syslog stream into frames (see the module docs).

    ``feed(chunk)`` returns the frames completed by `chunk`, ``end()`` what the end of the stream
    leaves; both return ``bytes`` for a good frame and `FramingError` for a bad one, in stream
    order, and never raise for any input. After `end()` the decoder is ready for a new stream.
    """

    __slots__ = (
        "_body_min",
        "_cap",
        "_count",
        "_delim",
        "_digits",
        "_garbage",
        "_head",
        "_need",
        "_octet",
        "_over",
        "_pending",
        "_state",
        "bytes_fed",
        "bytes_scanned",
        "framing",
        "max_count",
        "max_frame",
    )

    def __init__(
        self,
        framing: str = "auto",
        max_frame: int = DEFAULT_MAX_FRAME,
        *,
        max_count: int | None = None,
    ) -> None:
        if framing not in _MODES:
            raise ValueError(f"unknown framing {framing!r}: use one of {', '.join(_MODES)}")
        if max_frame < 1:
            raise ValueError("max_frame must be at least 1")
        if max_count is None:
            max_count = max(DEFAULT_MAX_COUNT, max_frame + 1)
        if max_count < 1:
            raise ValueError("max_count must be at least 1")
        self.framing = framing
        self.max_frame = max_frame
        self.max_count = max_count
        #: Octets examined while looking for counts and delimiters (linear-work checks).
        self.bytes_scanned = 0
        #: Octets given to feed().
        self.bytes_fed = 0
        self._octet = framing in ("auto", "octet")
        # Auto mode needs NONZERO-DIGIT to start a count; a forced count may be zero-padded.
        self._body_min = 0x31 if framing == "auto" else 0x30
        self._digits = len(str(max_count))
        # The one delimiter of a forced method, or -1 for "LF or NUL".
        self._delim = {"lf": 0x0A, "nul": 0x00}.get(framing, -1)
        self._reset()

    def _reset(self) -> None:
        self._state = _HEADER
        self._head = b""
        self._pending = bytearray()
        self._need = 0
        self._count = 0
        self._cap = 0
        self._over = False
        self._garbage = False

    @property
    def buffered(self) -> int:
        """Octets held between calls (at most ``max_frame + 1`` plus a partial count)."""
        return len(self._head) + len(self._pending)

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> list[bytes | FramingError]:
        """The frames (and bad frames) that `chunk` completes, in stream order."""
        if type(chunk) is not bytes:
            chunk = bytes(chunk)
        self.bytes_fed += len(chunk)
        out: list[bytes | FramingError] = []
        if not chunk:
            return out
        state = self._state
        pos = 0
        if state == _HEADER:
            if self._head:
                chunk = self._head + chunk
                self._head = b""
        elif state == _BODY:
            pos = self._continue_body(chunk, out)
        elif state == _DELIM:
            pos = self._continue_delimited(chunk, out)
        else:
            pos = self._skip(chunk, 0)
        if pos < len(chunk):
            self._run(chunk, pos, out)
        return out

    def end(self) -> list[bytes | FramingError]:
        """What the end of the stream leaves unfinished, then reset for a new stream."""
        out: list[bytes | FramingError] = []
        state = self._state
        kept = b""
        reason = ""
        if state == _HEADER and self._head:
            kept = self._head
            reason = f"stream ended inside an octet count ({kept!r})"
        elif state == _BODY and not self._over:
            kept = bytes(self._pending)
            got = self._count - self._need
            reason = f"stream ended after {got} of {self._count} octets of a frame"
        elif state == _DELIM and self._pending:
            kept = bytes(self._pending)
            reason = "stream ended before the frame's trailer"
        if kept:
            if len(kept) > self.max_frame:
                self._emit(kept, out)  # truncated and flagged like any overlong frame
            elif state == _DELIM and self._garbage:
                out.append(self._bad_count(kept))
            else:
                out.append(FramingError(reason, kept, kind=FramingError.INCOMPLETE))
        self._reset()
        return out

    # -- the main loop: frames starting at `pos` of `data` -------------------------------------

    def _run(self, data: bytes, pos: int, out: list[bytes | FramingError]) -> None:
        n = len(data)
        max_frame = self.max_frame
        max_count = self.max_count
        fast_max = min(max_frame + 1, max_count)
        octet = self._octet
        low = self._body_min
        window = self._digits + 1
        append = out.append
        find = data.find
        scanned = 0
        while pos < n:
            start = pos
            if octet and low <= data[pos] <= 0x39:
                sp = find(0x20, pos + 1, pos + window)
                if sp > 0:
                    scanned += sp + 1 - pos
                    digits = data[pos:sp]
                    if digits.isdigit():
                        count = int(digits)
                        end = sp + 1 + count
                        if 0 < count <= fast_max and end <= n:
                            # The whole frame is here and fits: the fast path.
                            if data[end - 1] == 0x0A:
                                if count > 1:
                                    append(data[sp + 1 : end - 1])
                            elif count <= max_frame:
                                append(data[sp + 1 : end])
                            else:
                                append(self._oversize(data[sp + 1 : sp + 1 + max_frame]))
                            pos = end
                            continue
                        if 0 < count <= max_count:
                            self.bytes_scanned += scanned
                            scanned = 0
                            pos = self._start_body(data, sp + 1, count, out)
                            if self._state != _HEADER:
                                return
                            continue
                else:
                    rest = n - pos
                    if rest < window and data[pos:].isdigit():
                        # A count cut by the end of the chunk: keep it for the next one.
                        scanned += rest
                        self._head = data[pos:]
                        break
            # Not octet-counted: a delimited frame (or, in forced octet mode, a bad one).
            self.bytes_scanned += scanned
            scanned = 0
            pos = self._delimited(data, start, out)
            if self._state != _HEADER:
                return
        self.bytes_scanned += scanned

    def _oversize(self, kept: bytes) -> FramingError:
        return FramingError(
            f"frame longer than {self.max_frame} octets, truncated",
            kept,
            truncated=True,
            kind=FramingError.OVERSIZE,
        )

    def _bad_count(self, kept: bytes, truncated: bool = False) -> FramingError:
        return FramingError(
            "no octet count where a frame must start (skipped to the next LF or NUL)",
            kept,
            truncated=truncated,
            kind=FramingError.BAD_COUNT,
        )

    # -- octet-counted frames ------------------------------------------------------------------

    def _start_body(
        self, data: bytes, body: int, count: int, out: list[bytes | FramingError]
    ) -> int:
        """A frame whose count is parsed but which is incomplete or oversize.

        Returns where the next frame starts (``len(data)`` when this one goes on in later chunks).
        """
        max_frame = self.max_frame
        n = len(data)
        avail = n - body
        if count <= max_frame + 1:
            cap = count
        else:
            cap = max_frame
            if avail >= cap:
                # Enough to deliver the truncated frame now; skip the rest.
                out.append(self._oversize(data[body : body + max_frame]))
                if avail >= count:
                    return body + count
                self._state = _BODY
                self._over = True
                self._need = count - avail
                self._count = count
                return n
        self._state = _BODY
        self._over = False
        self._pending = bytearray(data[body:])
        self._need = count - avail
        self._count = count
        self._cap = cap
        return n

    def _continue_body(self, chunk: bytes, out: list[bytes | FramingError]) -> int:
        take = min(self._need, len(chunk))
        if not self._over:
            pending = self._pending
            room = self._cap - len(pending)
            if room > 0:
                pending += memoryview(chunk)[: min(take, room)]
            if self._count > self.max_frame + 1 and len(pending) >= self._cap:
                out.append(self._oversize(bytes(pending)))
                self._pending = bytearray()
                self._over = True
        self._need -= take
        if self._need == 0:
            if not self._over:
                got = bytes(self._pending)
                if got.endswith(b"\n"):
                    got = got[:-1]
                if len(got) > self.max_frame:
                    out.append(self._oversize(got[: self.max_frame]))
                elif got:
                    out.append(got)
            self._pending = bytearray()
            self._over = False
            self._state = _HEADER
        return take

    # -- delimited frames ----------------------------------------------------------------------

    def _find(self, data: bytes, start: int, stop: int) -> int:
        """Index of the first delimiter in data[start:stop], or -1."""
        delim = self._delim
        if delim >= 0:
            return data.find(delim, start, stop)
        i = data.find(0x0A, start, stop)
        j = data.find(0x00, start, stop if i < 0 else i)
        return j if j >= 0 else i

    def _emit(self, content: bytes, out: list[bytes | FramingError]) -> None:
        if len(content) > self.max_frame:
            kept = content[: self.max_frame]
            out.append(self._bad_count(kept, True) if self._garbage else self._oversize(kept))
        elif not content:
            return
        elif self._garbage:
            out.append(self._bad_count(content))
        else:
            out.append(content)

    def _delimited(self, data: bytes, start: int, out: list[bytes | FramingError]) -> int:
        """A delimited frame starting at `start`; returns where the next frame starts."""
        n = len(data)
        max_frame = self.max_frame
        self._garbage = self.framing == "octet"
        limit = start + max_frame + 2  # content, a CR before LF, the delimiter
        stop = n if n < limit else limit
        i = self._find(data, start, stop)
        if i >= 0:
            self.bytes_scanned += i + 1 - start
            end = i
            if data[i] == 0x0A and end > start and data[end - 1] == 0x0D:
                end -= 1
            self._emit(data[start:end], out)
            self._garbage = False
            return i + 1
        self.bytes_scanned += stop - start
        if stop == limit:
            self._emit(data[start:limit], out)  # longer than max_frame: truncated, flagged
            self._garbage = False
            return self._skip(data, limit)
        self._state = _DELIM
        self._pending = bytearray(data[start:])
        return n

    def _continue_delimited(self, chunk: bytes, out: list[bytes | FramingError]) -> int:
        pending = self._pending
        window = self.max_frame + 2 - len(pending)
        n = len(chunk)
        stop = n if n < window else window
        i = self._find(chunk, 0, stop)
        if i >= 0:
            self.bytes_scanned += i + 1
            content = bytes(pending) + chunk[:i]
            if chunk[i] == 0x0A and content.endswith(b"\r"):
                content = content[:-1]
        elif stop == window:
            self.bytes_scanned += stop
            content = bytes(pending) + chunk[:window]
        else:
            self.bytes_scanned += n
            pending += chunk
            return n
        self._emit(content, out)
        self._garbage = False
        self._pending = bytearray()
        self._state = _HEADER
        return i + 1 if i >= 0 else self._skip(chunk, window)

    def _skip(self, data: bytes, pos: int) -> int:
        """Discard the rest of an oversize delimited frame: up to and including a delimiter."""
        n = len(data)
        i = self._find(data, pos, n)
        if i >= 0:
            self.bytes_scanned += i + 1 - pos
            self._state = _HEADER
            return i + 1
        self.bytes_scanned += n - pos
        self._state = _SKIP
        return n
