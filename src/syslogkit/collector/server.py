"""The collector's listeners: UDP, TCP, TLS and RELP (also over TLS), from URLs.

```
udp://127.0.0.1:5514    one message per datagram (a thread doing blocking reads, see below)
tcp://0.0.0.0:514       octet counting or LF/NUL delimited, detected per frame (RFC 6587)
tls://0.0.0.0:6514      the same inside TLS (RFC 5425); client certificates optional/required
relp://0.0.0.0:2514     RELP (rsyslog's imrelp/omrelp); acknowledged only once committed
relp+tls://0.0.0.0:2515 RELP inside TLS from the first byte (as librelp does it)
```

Stream listeners are asyncio protocols (frame splitting in `data_received` is the fast path).
UDP is served by a thread of its own that reads with blocking calls into one reused 64 KiB
buffer: asyncio's datagram transport reads every datagram into a fresh 256 KiB buffer, which
costs several times more CPU per message and loses datagrams well below 30k msgs/s. The socket
gets a receive buffer of several MiB (`SO_RCVBUFFORCE` when allowed, else `SO_RCVBUF`).

Limits: `max_frame` (longer frames are truncated, flagged and stored), `max_connections` per
listener (beyond it new connections are closed at once and counted), `frame_timeout` (a frame
that is not complete that many seconds after it began gets its connection cut: a client sending
one byte a second), `idle_timeout` (optional), `handshake_timeout` for TLS. When the sinks lag,
every stream connection stops reading (back-pressure) until they catch up; the UDP thread waits,
and the kernel's buffer absorbs what it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from syslogkit.codec.framing import FrameDecoder, FramingError
from syslogkit.codec.relp import DEFAULT_MAX_DATA, MessageReceived, ProtocolViolation, RelpServer
from syslogkit.transports.schemes import NETWORK_SCHEMES, SCHEMES
from syslogkit.transports.tls import build_server_context, fingerprint

from .record import Record, parse_frame
from .sinks import Pipeline, Sink
from .stats import ListenerStats

__all__ = [
    "DEFAULT_PORTS",
    "Collector",
    "CollectorThread",
    "Limits",
    "ListenAddress",
    "TLSConfig",
    "parse_listen_url",
]

DEFAULT_PORTS = NETWORK_SCHEMES
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenAddress:
    """A listener: scheme (udp, tcp, tls, relp, relp+tls), host and port (0: any free port)."""

    scheme: str
    host: str
    port: int

    @property
    def is_tls(self) -> bool:
        return SCHEMES[self.scheme].tls

    @property
    def is_relp(self) -> bool:
        return SCHEMES[self.scheme].relp

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_listen_url(url: str) -> ListenAddress:
    """`udp://127.0.0.1:5514`, `tcp://[::1]:514`, `tls://0.0.0.0` (default port), ..."""
    if "://" not in url:
        raise ValueError(f"listen address {url!r} is not a URL like tcp://127.0.0.1:5514")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            f"listen address {url!r}: scheme must be one of {', '.join(DEFAULT_PORTS)}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"listen address {url!r}: only scheme://host:port is allowed")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"listen address {url!r}: bad port") from exc
    host = parts.hostname
    if not host:
        raise ValueError(f"listen address {url!r}: no host (use 0.0.0.0 or [::] for all)")
    return ListenAddress(scheme, host, DEFAULT_PORTS[scheme] if port is None else port)


@dataclass
class TLSConfig:
    """The server side of TLS: certificate and key, and how clients are authenticated.

    `client_auth`: "none" (no client certificate asked), "optional" (verified against the CA when
    sent), "required" (a client without a certificate chaining to the CA is refused).
    """

    certfile: str
    keyfile: str | None = None
    cafile: str | None = None
    capath: str | None = None
    client_auth: str = "optional"
    password: str | None = None

    def context(self) -> ssl.SSLContext:
        return build_server_context(
            cert_file=self.certfile,
            key_file=self.keyfile,
            key_password=self.password,
            ca_file=self.cafile,
            ca_dir=self.capath,
            client_auth=self.client_auth,
        )


@dataclass
class Limits:
    """Per-listener limits (see the module docstring)."""

    max_frame: int = 8192
    max_connections: int = 512
    frame_timeout: float = 10.0
    idle_timeout: float | None = None
    handshake_timeout: float = 10.0
    udp_rcvbuf: int = 8 << 20
    relp_window: int = 128


_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "emailAddress",
    "domainComponent": "DC",
}


def _subject(cert: dict[str, Any] | None) -> str | None:
    if not cert or "subject" not in cert:
        return None
    parts = []
    for rdn in cert["subject"]:
        for name, value in rdn:
            parts.append(f"{_SHORT_NAMES.get(name, name)}={value}")
    return ",".join(parts) or None


def _peer_name(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = str(addr[0])
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return str(addr) if addr else "-"


def _buffered(decoder: FrameDecoder) -> int:
    """How many bytes the decoder holds for an incomplete frame."""
    value = getattr(decoder, "buffered", None)
    if value is None:
        return 0
    return int(value() if callable(value) else value)


# -- stream connections -------------------------------------------------------------------------


_BACKLOG = 1024


def _listening_sockets(host: str | None, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking TCP sockets for host and port, one per address, set up
    as `loop.create_server` sets up its own (SO_REUSEADDR, IPv6 sockets IPv6-only)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _closer(sock: socket.socket) -> Callable[[asyncio.Task[None]], None]:
    return lambda _task: sock.close()


class _Connection(asyncio.Protocol):
    """One TCP or TLS connection: bytes -> frames -> records -> pipeline."""

    def __init__(self, listener: _StreamListener) -> None:
        self.listener = listener
        self.stats = listener.stats
        self.limits = listener.limits
        self.transport: asyncio.Transport | None = None
        self.peer = "-"
        self.tls_subject: str | None = None
        self.tls_fingerprint: str | None = None
        self.decoder = FrameDecoder(max_frame=self.limits.max_frame)
        self.max_buffered = 0
        self.partial_since: float | None = None
        self.last_activity = 0.0
        self.admitted = False
        self.ready = False
        self.closing = False
        self.paused = False
        self._released = False
        self._early: list[bytes] = []
        self._early_eof = False
        self._handshake: asyncio.Task[None] | None = None

    # lifecycle

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)
        if self.admitted:  # TLS: `handshake()` admitted it; the handshake is done
            self._secured(transport)
            return
        if self._admit(transport.get_extra_info("peername")):
            self._ready(transport)
        else:
            transport.abort()

    def _admit(self, peername: Any) -> bool:
        """Count a new connection; False (refused, counted) beyond the limit or when stopping."""
        listener = self.listener
        self.peer = _peer_name(peername)
        self.last_activity = listener.loop.time()
        if self.stats.active >= self.limits.max_connections or listener.stopping:
            self.stats.refused += 1
            self._released = True
            return False
        self.admitted = True
        self.stats.connections += 1
        self.stats.active += 1
        listener.connections.add(self)
        return True

    def handshake(self, sock: socket.socket, peername: Any) -> None:
        """Serve an accepted socket over TLS: admit it, then shake hands in a task of its own.

        The loop's own TLS (`connect_accepted_socket(ssl=...)`) gets the socket before any byte
        is read from it. Upgrading a connection that already has a plain protocol
        (`start_tls`) can lose the ClientHello to that protocol when the loop starts reading
        before the upgrade (uvloop does; so does asyncio before Python 3.12, python/cpython#103607).
        """
        if not self._admit(peername):
            sock.close()
            return
        self._handshake = self.listener.loop.create_task(self._shake_hands(sock))

    async def _shake_hands(self, sock: socket.socket) -> None:
        listener = self.listener
        assert listener.ssl_context is not None
        try:
            await listener.loop.connect_accepted_socket(
                lambda: self,
                sock,
                ssl=listener.ssl_context,
                ssl_handshake_timeout=self.limits.handshake_timeout,
            )
        except asyncio.CancelledError:
            sock.close()
            self._release()
            raise
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError, EOFError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            self.stats.dropped[f"tls_handshake:{reason}"] += 1
            listener.last_error = f"TLS handshake with {self.peer}: {exc}"
            sock.close()
            self._release()

    def _secured(self, transport: asyncio.Transport) -> None:
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            der = sslobj.getpeercert(binary_form=True)
            if der:
                self.tls_fingerprint = fingerprint(der)
                self.tls_subject = _subject(sslobj.getpeercert())
        self._ready(transport)

    def _ready(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.ready = True
        if self.listener.paused:
            self.pause()
        early, self._early = self._early, []
        for chunk in early:
            self.data_received(chunk)
        if self._early_eof:
            self.eof_received()
            transport.close()

    def pause(self) -> None:
        if self.transport is not None and not self.paused and not self.closing:
            self.paused = True
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and self.paused and not self.closing:
            self.paused = False
            if self.partial_since is not None:
                self.partial_since = self.listener.loop.time()
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        self.closing = True
        if self.admitted:
            self.stats.active -= 1
            self.listener.connections.discard(self)
            self.listener.on_connection_closed(self)

    def cut(self, reason: str) -> None:
        """Close the connection on the collector's initiative (deadline, idle, shutdown)."""
        if self.closing:
            return
        if reason != "shutdown":
            self.stats.dropped[f"cut:{reason}"] += 1
        self._flush_partial(f"incomplete frame (connection cut: {reason})")
        self.before_close()
        self.closing = True
        if self.transport is not None:
            self.transport.close()
        if self._handshake is not None and not self._handshake.done():
            self._handshake.cancel()

    def before_close(self) -> None:
        """Called before the collector closes the connection (RELP sends its hint here)."""

    # data

    def data_received(self, data: bytes) -> None:
        if not self.ready:
            self._early.append(data)
            return
        if self.closing:
            return
        now = self.listener.loop.time()
        self.last_activity = now
        self.stats.bytes += len(data)
        try:
            items = self.decoder.feed(data)
        except Exception as exc:  # a decoder bug: count it, keep the collector serving others
            self.stats.dropped["decoder_error"] += 1
            self.listener.last_error = f"decoder: {type(exc).__name__}: {exc}"
            self.closing = True
            if self.transport is not None:
                self.transport.abort()
            return
        held = _buffered(self.decoder)
        if held > self.max_buffered:
            self.max_buffered = held
            if held > self.listener.max_buffered:
                self.listener.max_buffered = held
        if items:
            self.frames(items)
            self.partial_since = now if held else None
        elif held and self.partial_since is None:
            self.partial_since = now

    def eof_received(self) -> bool | None:
        if not self.ready:
            self._early_eof = True
            return None
        items = self.decoder.end()
        if items:
            self.frames(items, at_eof=True)
        self.partial_since = None
        return None

    def _flush_partial(self, error: str) -> None:
        if not self.ready:
            return
        try:
            items = self.decoder.end()
        except Exception:  # pragma: no cover - a decoder bug must not stop the shutdown
            return
        if items:
            self.frames(items, forced_error=error)
        self.partial_since = None

    def frames(
        self,
        items: Sequence[bytes | FramingError],
        *,
        forced_error: str | None = None,
        at_eof: bool = False,
    ) -> None:
        stats = self.stats
        now = time.time()
        records: list[Record] = []
        append = records.append
        scheme = self.listener.scheme
        listener_url = self.listener.url
        peer = self.peer
        subject = self.tls_subject
        fpr = self.tls_fingerprint
        received = parsed = 0
        for item in items:
            framing_error: str | None = None
            if isinstance(item, FramingError):
                raw = item.frame or b""
                if at_eof and item.kind == FramingError.INCOMPLETE and "trailer" in item.reason:
                    # a delimited last frame without its LF: complete, as rsyslog takes it
                    framing_error = None
                else:
                    framing_error = f"framing: {item.reason}"
                    stats.framing[item.kind] += 1
                if not raw:
                    stats.dropped[f"framing:{item.kind}"] += 1
                    continue
            else:
                raw = item
            received += 1
            if framing_error or forced_error:
                message, error, msg_bytes = parse_frame(raw, forced_error, framing_error)
            else:
                message, error, msg_bytes = parse_frame(raw)
            if error is None:
                parsed += 1
            append(
                Record(
                    raw, now, scheme, peer, listener_url, message, error, msg_bytes, subject, fpr
                )
            )
        stats.received += received
        stats.parsed += parsed
        stats.failed += received - parsed
        if records:
            self.listener.pipeline.submit(records)


class _RelpConnection(_Connection):
    """One RELP session: a message is acknowledged only once the pipeline has committed it.

    Commits are asked for at once when the sender's window (`Limits.relp_window`) is full, else
    they happen on the pipeline's timer, so a sender waiting for acks never stalls.
    """

    def __init__(self, listener: _StreamListener) -> None:
        super().__init__(listener)
        self.relp = RelpServer(max_data=max(DEFAULT_MAX_DATA, self.limits.max_frame + 1))
        self.unacked = 0

    def _write(self) -> None:
        out = self.relp.data_to_send()
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out)
        if self.relp.state == "closed" and transport is not None and not self.closing:
            self.closing = True
            transport.close()

    def data_received(self, data: bytes) -> None:
        if not self.ready:
            self._early.append(data)
            return
        if self.closing:
            return
        loop = self.listener.loop
        now = loop.time()
        self.last_activity = now
        stats = self.stats
        stats.bytes += len(data)
        events = self.relp.receive_data(data)
        held = _relp_buffered(self.relp)
        if held > self.max_buffered:
            self.max_buffered = held
            self.listener.max_buffered = max(self.listener.max_buffered, held)
        records: list[Record] = []
        txnrs: list[int] = []
        violation: str | None = None
        received_at = time.time()
        max_frame = self.limits.max_frame
        for event in events:
            if isinstance(event, MessageReceived):
                raw = event.message
                if raw.endswith(b"\n"):
                    raw = raw[:-1]  # rsyslog's templates end in LF
                framing_error = None
                if len(raw) > max_frame:
                    raw = raw[:max_frame]
                    framing_error = f"framing: RELP message longer than {max_frame}, truncated"
                    stats.framing["oversize"] += 1
                stats.received += 1
                message, error, msg_bytes = parse_frame(raw, framing_error)
                if error is None:
                    stats.parsed += 1
                else:
                    stats.failed += 1
                records.append(
                    Record(
                        raw,
                        received_at,
                        self.listener.scheme,
                        self.peer,
                        self.listener.url,
                        message,
                        error,
                        msg_bytes,
                        self.tls_subject,
                        self.tls_fingerprint,
                    )
                )
                txnrs.append(event.txnr)
            elif isinstance(event, ProtocolViolation):
                violation = event.reason
        if records:
            # stored even when the session then fails: the sender re-sends (at least once)
            self.unacked += len(records)
            urgent = self.unacked >= self.limits.relp_window
            self.listener.pipeline.submit(records, self._committed(txnrs), urgent=urgent)
        if not held:
            self.partial_since = None
        elif records or self.partial_since is None:
            self.partial_since = now
        if violation is not None:
            stats.dropped["relp_protocol_error"] += 1
            self.listener.last_error = f"RELP from {self.peer}: {violation}"
            self.closing = True
            if self.transport is not None:
                self.transport.close()
            return
        self._write()

    def _committed(self, txnrs: list[int]) -> Callable[[bool], None]:
        loop = self.listener.loop

        def done(ok: bool) -> None:  # in the pipeline's thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: nothing to answer
                loop.call_soon_threadsafe(self._answer, txnrs, ok)

        return done

    def _answer(self, txnrs: list[int], ok: bool) -> None:
        self.unacked -= len(txnrs)
        if self.closing:
            return
        for txnr in txnrs:
            with contextlib.suppress(ValueError):  # the session ended meanwhile
                self.relp.ack(txnr, ok, "OK" if ok else "not stored")
        if not ok:
            self.stats.dropped["store_error"] += len(txnrs)
        self._write()

    def eof_received(self) -> bool | None:
        self.partial_since = None
        return None

    def _flush_partial(self, error: str) -> None:
        self.partial_since = None  # a partial RELP frame is never acknowledged: it is re-sent

    def before_close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            out = self.relp.close()
            if out:
                self.transport.write(out)


def _relp_buffered(server: RelpServer) -> int:
    parser = getattr(server, "_parser", None)
    return int(getattr(parser, "buffered", 0))


# -- listeners ----------------------------------------------------------------------------------


class _Listener:
    scheme: str
    url: str
    stats: ListenerStats

    def stats_dict(self) -> dict[str, Any]:
        return self.stats.as_dict()


class _StreamListener(_Listener):
    """A TCP/TLS/RELP listening socket and its connections."""

    def __init__(
        self,
        address: ListenAddress,
        pipeline: Pipeline,
        limits: Limits,
        loop: asyncio.AbstractEventLoop,
        ssl_context: ssl.SSLContext | None,
        protocol: Callable[[_StreamListener], _Connection],
    ) -> None:
        self.address = address
        self.scheme = address.scheme
        self.url = str(address)
        self.pipeline = pipeline
        self.limits = limits
        self.loop = loop
        self.ssl_context = ssl_context
        self.protocol = protocol
        self.connections: set[_Connection] = set()
        self.stats = ListenerStats(self.url)
        self.server: asyncio.AbstractServer | None = None
        self._accepting: list[asyncio.Task[None]] = []  # TLS: one accept loop per socket
        self.paused = False
        self.stopping = False
        self.max_buffered = 0
        self.last_error: str | None = None
        self._all_closed = asyncio.Event()

    async def start(self) -> None:
        host, port = self.address.host, self.address.port
        if self.ssl_context is None:
            self.server = await self.loop.create_server(
                lambda: self.protocol(self), host, port, reuse_address=True, backlog=_BACKLOG
            )
            sockets = list(self.server.sockets)
        else:
            sockets = _listening_sockets(host, port)
            for sock in sockets:
                task = self.loop.create_task(self._accept(sock))
                # the socket is closed once its accept loop has let go of it (no reader is
                # left on a descriptor the system may hand out again)
                task.add_done_callback(_closer(sock))
                self._accepting.append(task)
        sockname = sockets[0].getsockname()
        self.address = ListenAddress(self.address.scheme, self.address.host, int(sockname[1]))
        self.url = str(self.address)
        self.stats.url = self.url

    async def _accept(self, sock: socket.socket) -> None:
        """Accept TLS connections and hand each to a new connection's `handshake`."""
        loop = self.loop
        while not self.stopping:
            try:
                client, peername = await loop.sock_accept(sock)
            except OSError as exc:  # EMFILE and the like: say so, breathe, go on
                self.last_error = f"accept: {exc}"
                await asyncio.sleep(0.1)
                continue
            client.setblocking(False)
            self.protocol(self).handshake(client, peername)

    def on_connection_closed(self, conn: _Connection) -> None:
        if not self.connections:
            self._all_closed.set()

    def pause(self) -> None:
        self.paused = True
        for conn in list(self.connections):
            conn.pause()

    def resume(self) -> None:
        self.paused = False
        for conn in list(self.connections):
            conn.resume()

    def sweep(self, now: float) -> None:
        """Cut connections whose frame is overdue or that have been idle too long."""
        if self.paused:
            return
        timeout = self.limits.frame_timeout
        idle = self.limits.idle_timeout
        for conn in list(self.connections):
            if conn.closing:
                continue
            if not conn.ready:
                continue  # the TLS handshake has its own timeout
            if conn.partial_since is not None and now - conn.partial_since > timeout:
                conn.cut("read_deadline")
            elif idle is not None and now - conn.last_activity > idle:
                conn.cut("idle_timeout")

    def stop_accepting(self) -> None:
        self.stopping = True
        if self.server is not None:
            self.server.close()
        for task in self._accepting:
            task.cancel()  # its socket is closed when it has ended

    async def close_connections(self, timeout: float) -> None:
        if not self.connections:
            return
        self._all_closed.clear()
        for conn in list(self.connections):
            conn.cut("shutdown")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._all_closed.wait(), timeout)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()

    def stats_dict(self) -> dict[str, Any]:
        out = self.stats.as_dict()
        out["max_buffered"] = self.max_buffered
        if self.last_error:
            out["last_error"] = self.last_error
        return out


class _UdpListener(_Listener):
    """A UDP socket read by a thread of its own (see the module docstring)."""

    def __init__(self, address: ListenAddress, pipeline: Pipeline, limits: Limits) -> None:
        self.address = address
        self.scheme = "udp"
        self.url = str(address)
        self.pipeline = pipeline
        self.limits = limits
        self.stats = ListenerStats(self.url)
        self.rcvbuf = 0
        self._stop = False
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name=f"syslogkit-{self.url}", daemon=True)
        self._peers: dict[Any, str] = {}
        self._final_drops: int | None = None

    def start(self) -> None:
        infos = socket.getaddrinfo(
            self.address.host, self.address.port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
        )
        family, socktype, proto, _name, addr = infos[0]
        sock = socket.socket(family, socktype, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, self.limits.udp_rcvbuf)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.limits.udp_rcvbuf)
            sock.bind(addr)
        except BaseException:
            sock.close()
            raise
        self.rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        sock.setblocking(False)
        self._sock = sock
        port = sock.getsockname()[1]
        self.address = ListenAddress("udp", self.address.host, int(port))
        self.url = str(self.address)
        self.stats.url = self.url
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Read what the kernel holds, hand it to the pipeline, and stop the thread."""
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._sock is not None:
            self._final_drops = self.kernel_drops()
            self._sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def kernel_drops(self) -> int | None:
        """The kernel's drop counter for this socket (/proc/net/udp[6]), None if unknown."""
        if self._sock is None or self._sock.fileno() < 0:
            return self._final_drops
        return udp_drops(os.fstat(self._sock.fileno()).st_ino)

    def stats_dict(self) -> dict[str, Any]:
        out = self.stats.as_dict()
        out["rcvbuf"] = self.rcvbuf
        out["kernel_drops"] = self.kernel_drops()
        return out

    def _peer(self, addr: Any) -> str:
        name = self._peers.get(addr)
        if name is None:
            if len(self._peers) > 4096:
                self._peers.clear()
            name = self._peers[addr] = _peer_name(addr)
        return name

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._wake_r.fileno(), select.POLLIN)
        buf = bytearray(65536)
        view = memoryview(buf)
        recv_into = sock.recvfrom_into
        while True:
            poller.poll()
            batch: list[tuple[bytes, Any]] = []
            while len(batch) < 1024:
                try:
                    n, addr = recv_into(buf)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                batch.append((bytes(view[:n]), addr))
            if batch:
                self._process(batch)
            elif self._stop:
                return

    def _process(self, batch: list[tuple[bytes, Any]]) -> None:
        stats = self.stats
        now = time.time()
        max_frame = self.limits.max_frame
        url = self.url
        records: list[Record] = []
        for data, addr in batch:
            stats.bytes += len(data)
            if not data:
                stats.dropped["empty_datagram"] += 1
                continue
            stats.received += 1
            text = data[:-1] if data[-1] == 10 else data
            framing_error = None
            if len(text) > max_frame:
                framing_error = f"framing: datagram of {len(data)} bytes truncated to {max_frame}"
                text = data = data[:max_frame]
                stats.framing["truncated"] += 1
            message, error, msg_bytes = parse_frame(text, framing_error)
            if error is None:
                stats.parsed += 1
            else:
                stats.failed += 1
            records.append(
                Record(data, now, "udp", self._peer(addr), url, message, error, msg_bytes)
            )
        if records:
            while not self.pipeline.wait_for_room(0.5):
                if self._stop:
                    break
            self.pipeline.submit(records)


def _stop_all(udps: Sequence[_UdpListener]) -> None:
    for udp in udps:
        udp.stop()


def udp_drops(inode: int) -> int | None:
    """The `drops` column of /proc/net/udp or udp6 for a socket inode."""
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) > 12 and cols[9] == str(inode):
                        return int(cols[-1])
        except OSError:
            continue
    return None


# -- the collector ------------------------------------------------------------------------------


class Collector:
    """Listeners feeding one pipeline of sinks.

    ```python
    collector = Collector(["udp://127.0.0.1:5514", "tcp://127.0.0.1:5514"], [SQLiteSink("x.db")])
    await collector.start()          # binds; collector.urls has the real ports (port 0 allowed)
    ...
    await collector.stop()           # stop accepting, drain, commit, answer RELP, close
    ```
    """

    def __init__(
        self,
        listen: Sequence[str | ListenAddress],
        sinks: Sequence[Sink],
        *,
        tls: TLSConfig | None = None,
        limits: Limits | None = None,
        commit_interval: float = 0.02,
        max_batch: int = 5000,
        high_water: int = 50_000,
        drain_timeout: float = 2.0,
        drain_quiet: float = 0.2,
    ) -> None:
        self.drain_timeout = drain_timeout
        self.drain_quiet = drain_quiet
        self.addresses = [
            a if isinstance(a, ListenAddress) else parse_listen_url(a) for a in listen
        ]
        if not self.addresses:
            raise ValueError("a collector needs at least one listen address")
        self.tls = tls
        self.limits = limits or Limits()
        if any(a.is_tls for a in self.addresses) and tls is None:
            raise ValueError("a tls:// or relp+tls:// listener needs a certificate and key")
        self.ssl_context = tls.context() if tls is not None else None
        self.pipeline = Pipeline(
            sinks,
            commit_interval=commit_interval,
            max_batch=max_batch,
            high_water=high_water,
            pressure=self._pressure,
        )
        self.listeners: list[_Listener] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started_at = 0.0
        self._loop_thread = 0
        self._stopped = False
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def urls(self) -> list[str]:
        """The listeners' URLs with the ports they are bound to."""
        return [listener.url for listener in self.listeners]

    def _pressure(self, paused: bool) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._apply_pressure(paused)  # pause before the next read, not an iteration later
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._apply_pressure, paused)

    def _apply_pressure(self, paused: bool) -> None:
        for listener in self.listeners:
            if isinstance(listener, _StreamListener):
                if paused and self.pipeline.paused:
                    listener.pause()
                elif not paused and not self.pipeline.paused:
                    listener.resume()

    async def start(self) -> list[str]:
        """Bind every listener and start serving; returns their URLs."""
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.pipeline.start()
        try:
            for address in self.addresses:
                if address.scheme == "udp":
                    udp = _UdpListener(address, self.pipeline, self.limits)
                    udp.start()
                    self.listeners.append(udp)
                else:
                    protocol = _RelpConnection if address.is_relp else _Connection
                    stream = _StreamListener(
                        address,
                        self.pipeline,
                        self.limits,
                        self.loop,
                        self.ssl_context if address.is_tls else None,
                        protocol,
                    )
                    await stream.start()
                    self.listeners.append(stream)
        except BaseException:
            await self.stop()
            raise
        self.started_at = time.time()
        self._sweeper = self.loop.create_task(self._sweep())
        return self.urls

    async def _sweep(self) -> None:
        interval = max(0.05, min(1.0, self.limits.frame_timeout / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for listener in self.listeners:
                if isinstance(listener, _StreamListener):
                    listener.sweep(now)

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting; read on until clients are quiet (`drain_quiet` seconds, at most
        `drain_timeout`); commit everything received; answer RELP senders; close."""
        loop = asyncio.get_running_loop()
        if self._stopped:
            return
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        streams = [x for x in self.listeners if isinstance(x, _StreamListener)]
        udps = [x for x in self.listeners if isinstance(x, _UdpListener)]
        for stream in streams:
            stream.stop_accepting()
        udp_done = loop.run_in_executor(None, _stop_all, udps) if udps else None
        # read what clients already sent: until every connection has been quiet for a moment
        deadline = loop.time() + self.drain_timeout
        while loop.time() < deadline:
            active = [
                conn.last_activity
                for stream in streams
                for conn in stream.connections
                if not conn.closing and not conn.paused
            ]
            if not active or loop.time() - max(active) >= self.drain_quiet:
                break
            await asyncio.sleep(0.02)
        for stream in streams:
            for conn in list(stream.connections):
                conn.pause()
        if udp_done is not None:
            await udp_done
        # commit everything received; RELP answers are queued by the pipeline's callbacks
        await loop.run_in_executor(None, self.pipeline.drain, timeout)
        for _ in range(3):
            await asyncio.sleep(0)
        for stream in streams:
            await stream.close_connections(min(timeout, 2.0))
        for stream in streams:
            if stream.server is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stream.server.wait_closed(), 2.0)
        await loop.run_in_executor(None, self.pipeline.close, timeout)

    def stats(self) -> dict[str, Any]:
        """Counters: per listener, and for the pipeline."""
        return {
            "listeners": [listener.stats_dict() for listener in self.listeners],
            "pipeline": self.pipeline.stats.as_dict() | {"pending": self.pipeline.pending},
        }


# -- running in a thread (tests, embedding in a synchronous program) ----------------------------


class CollectorThread:
    """A `Collector` on an event loop in a background thread (`loop_factory` makes the loop:
    asyncio's by default, `uvloop.new_event_loop` for instance).

    ```python
    with CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(path)]) as c:
        port = c.port("tcp")
    ```
    """

    def __init__(
        self,
        listen: Sequence[str],
        sinks: Sequence[Sink],
        *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
        **options: Any,
    ) -> None:
        self.collector = Collector(listen, sinks, **options)
        self._loop = loop_factory()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._started = False

    def start(self) -> CollectorThread:
        self._thread.start()
        self._started = True
        asyncio.run_coroutine_threadsafe(self.collector.start(), self._loop).result(30)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if not self._started:
            return
        self._started = False
        try:
            asyncio.run_coroutine_threadsafe(self.collector.stop(timeout), self._loop).result(
                timeout + 5
            )
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the collector's loop and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def stats(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.call(self.collector.stats))

    def url(self, scheme: str) -> str:
        for url in self.collector.urls:
            if url.startswith(scheme + "://"):
                return url
        raise KeyError(scheme)

    def port(self, scheme: str) -> int:
        return int(self.url(scheme).rsplit(":", 1)[1])

    def __enter__(self) -> CollectorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
