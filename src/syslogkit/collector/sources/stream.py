"""TCP and TLS listeners: asyncio protocols, frame splitting in `data_received` (the fast path).

TLS connections are accepted by the listener and handed to the loop's TLS before any byte is
read (see `StreamConnection.handshake`). Limits (`config.Limits`): `max_connections_per_peer`
(connections one source address may hold, TLS handshakes in progress included; beyond it its
new connections are closed at once, counted for it and told), `max_connections` (when every
slot is taken, the busiest peer's oldest idle or half-frame connection, or handshake in
progress, is cut so that a peer holding fewer gets in: `StreamListener.room_for`; when there is
none to cut, the new connection is refused), `frame_timeout` (a frame not complete that many
seconds after it began gets its connection cut: a client sending one byte a second),
`idle_timeout` (optional), `handshake_timeout`. When the pipeline lags, every connection stops
reading (back-pressure) until it catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import Any, cast

from syslogkit.codec.framing import FrameDecoder, FramingError
from syslogkit.transports.tls import fingerprint

from ..config import Limits, ListenAddress
from ..pipeline import Pipeline
from ..record import Record
from .base import Listener, Peer, PeerTable, peer_host, peer_name, tell, tls_subject

__all__ = ["CUTTABLE_IDLE", "StreamConnection", "StreamListener"]

_BACKLOG = 1024
#: seconds without a byte after which a connection may be cut for a new peer's
CUTTABLE_IDLE = 1.0


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


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection: bytes -> frames -> records -> pipeline."""

    def __init__(self, listener: StreamListener) -> None:
        self.listener = listener
        self.stats = listener.stats
        self.limits = listener.limits
        self.transport: asyncio.Transport | None = None
        self.peer = "-"
        self.tls_subject: str | None = None
        self.tls_fingerprint: str | None = None
        self.framer = FrameDecoder(max_frame=self.limits.max_frame)
        self.max_buffered = 0
        self.partial_since: float | None = None
        self.last_activity = 0.0
        self.admitted = False
        self.slot: Peer[StreamConnection] | None = None  # the peer it is counted under
        self.order = 0  # admitted as the listener's n-th connection
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
        """Count a new connection; False (refused, counted for its peer) beyond the limits
        (`StreamListener.room_for`) or when stopping."""
        listener = self.listener
        self.peer = peer_name(peername)
        now = self.last_activity = listener.loop.time()
        peer = listener.peers.peer(peer_host(peername))
        if listener.stopping or not listener.room_for(peer, now):
            self._released = True
            listener.refused(peer, now)
            return False
        self.admitted = True
        self.stats.connections += 1
        self.order = self.stats.connections
        self.stats.active += 1
        listener.connections.add(self)
        self.slot = peer
        peer.held.add(self)
        peer.connections += 1
        return True

    def cuttable(self, now: float) -> bool:
        """Whether this connection may be cut for a new peer's: a TLS handshake in progress,
        a frame begun and not finished, or nothing received for `CUTTABLE_IDLE` seconds; never
        while back-pressure holds its reading (its silence is the collector's doing)."""
        if self.closing:
            return False
        if not self.ready:
            return True
        if self.paused:
            return False
        return self.partial_since is not None or now - self.last_activity >= CUTTABLE_IDLE

    def evict(self) -> None:
        """Cut this connection to let a new peer in; its slot is free at once."""
        if self.slot is not None:
            self.slot.cut += 1
        self.cut("fairness")
        self._release()

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
                self.tls_subject = tls_subject(sslobj.getpeercert())
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
            if self.slot is not None:
                self.slot.held.discard(self)
            self.listener.connections.discard(self)
            self.listener.on_connection_closed(self)

    def cut(self, reason: str) -> None:
        """Close the connection on the collector's initiative (deadline, idle, fairness,
        shutdown)."""
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
            items = self.framer.feed(data)
        except Exception as exc:  # a decoder bug: count it, keep the collector serving others
            self.stats.dropped["decoder_error"] += 1
            self.listener.last_error = f"decoder: {type(exc).__name__}: {exc}"
            self.closing = True
            if self.transport is not None:
                self.transport.abort()
            return
        held = self.framer.buffered
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
        items = self.framer.end()
        if items:
            self.frames(items, at_eof=True)
        self.partial_since = None
        return None

    def _flush_partial(self, error: str) -> None:
        if not self.ready:
            return
        try:
            items = self.framer.end()
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
        """Records from the decoder's frames, submitted to the pipeline in one batch."""
        decoder = self.listener.decoder
        now = time.time()
        reference = decoder.reference()
        peer = self.peer
        subject = self.tls_subject
        fpr = self.tls_fingerprint
        records: list[Record]
        if forced_error is None and all(type(item) is bytes for item in items):
            frames = cast("Sequence[bytes]", items)
            records = decoder.records(
                frames,
                now,
                [peer] * len(frames),
                reference=reference,
                tls_subject=subject,
                tls_fingerprint=fpr,
            )
        else:
            records = []
            for item in items:
                raw, note = decoder.frame(item, at_eof=at_eof)
                if not raw:
                    continue
                records.append(
                    decoder.record(
                        raw,
                        now,
                        peer,
                        forced_error,
                        note,
                        reference=reference,
                        tls_subject=subject,
                        tls_fingerprint=fpr,
                    )
                )
        if records:
            self.listener.pipeline.submit(records)


class StreamListener(Listener):
    """A TCP/TLS/RELP listening socket and its connections."""

    def __init__(
        self,
        address: ListenAddress,
        pipeline: Pipeline,
        limits: Limits,
        zone: tzinfo | None,
        loop: asyncio.AbstractEventLoop,
        ssl_context: ssl.SSLContext | None,
        protocol: Callable[[StreamListener], StreamConnection],
    ) -> None:
        super().__init__(address, pipeline, limits, zone)
        self.loop = loop
        self.ssl_context = ssl_context
        self.protocol = protocol
        self.connections: set[StreamConnection] = set()
        self.peers: PeerTable[StreamConnection] = PeerTable()
        self.tell = tell  # where refusal lines go
        self.server: asyncio.AbstractServer | None = None
        self._accepting: list[asyncio.Task[None]] = []  # TLS: one accept loop per socket
        self.paused = False
        self.stopping = False
        self.max_buffered = 0
        self._all_closed = asyncio.Event()

    async def start(self) -> None:
        host, port = self.address.host, self.address.port
        given = self.given
        if self.ssl_context is None:
            if given is not None:
                self.server = await self.loop.create_server(
                    lambda: self.protocol(self), sock=given, backlog=_BACKLOG
                )
            else:
                self.server = await self.loop.create_server(
                    lambda: self.protocol(self), host, port, reuse_address=True, backlog=_BACKLOG
                )
            sockets = list(self.server.sockets)
        else:
            sockets = [given] if given is not None else _listening_sockets(host, port)
            for sock in sockets:
                sock.setblocking(False)
            for sock in sockets:
                task = self.loop.create_task(self._accept(sock))
                # the socket is closed once its accept loop has let go of it (no reader is
                # left on a descriptor the system may hand out again)
                task.add_done_callback(_closer(sock))
                self._accepting.append(task)
        self.bound(int(sockets[0].getsockname()[1]))

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

    def room_for(self, peer: Peer[StreamConnection], now: float) -> bool:
        """Whether a new connection from `peer` may be served: under its own limit, and under
        the listener's, or once a connection of a peer holding at least two more than `peer`
        was cut for it (the busiest first, its connection idle or half-frame the longest)."""
        limits = self.limits
        if len(peer.held) >= limits.max_connections_per_peer:
            return False
        if self.stats.active < limits.max_connections:
            return True
        victim = self._victim(len(peer.held), now)
        if victim is None:
            return False
        victim.evict()
        return True

    def _victim(self, newcomer_holds: int, now: float) -> StreamConnection | None:
        for busiest in self.peers.holding():
            if len(busiest.held) < newcomer_holds + 2:
                return None  # cutting would only move the unfairness
            candidates = [conn for conn in busiest.held if conn.cuttable(now)]
            if candidates:
                # the loop's clock may tick in milliseconds (uvloop): ties go to the older
                return min(candidates, key=lambda conn: (conn.last_activity, conn.order))
        return None

    def refused(self, peer: Peer[StreamConnection], now: float) -> None:
        """Count a refused connection, for the listener and its peer, and tell it when due."""
        self.stats.refused += 1
        peer.refused += 1
        peer.untold += 1
        self.tell_refusals(now)

    def tell_refusals(self, now: float, *, due: bool = False) -> None:
        """One line naming the peers refused since the last one, at most every
        `NOTICE_INTERVAL` seconds (`due`: now, whatever the interval)."""
        line = self.peers.refusal_notice(self.url, self.limits, now, due=due)
        if line is not None:
            self.tell(line)

    def on_connection_closed(self, conn: StreamConnection) -> None:
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
        """Cut connections whose frame is overdue or that have been idle too long; tell the
        refusals not yet told."""
        self.tell_refusals(now)
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
        self.tell_refusals(self.loop.time(), due=True)
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
        return super().stats_dict() | {
            "max_buffered": self.max_buffered,
            "peers": self.peers.top(),
        }
