"""The collector: listeners (UDP, TCP, TLS, RELP) feeding one pipeline of sinks, from URLs.

```
udp://127.0.0.1:5514    one message per datagram (a thread doing blocking reads: sources/udp)
tcp://0.0.0.0:514       octet counting or LF/NUL delimited, detected per frame (RFC 6587)
tls://0.0.0.0:6514      the same inside TLS (RFC 5425); client certificates optional/required
relp://0.0.0.0:2514     RELP (rsyslog's imrelp/omrelp); acknowledged only once committed
relp+tls://0.0.0.0:2515 RELP inside TLS from the first byte (as librelp does it)
```

The way of a message: `sources/` read it, `decode` makes the `Record` (one rule for trailing
LF, truncation, parse and counts), `pipeline` hands batches to `sinks/` and commits. Limits per
listener (`Limits`): `max_frame` (longer messages are truncated, noted and stored),
`max_connections`, `max_connections_per_peer` (a listener URL's `?max_connections_per_peer=`
overrides it), `frame_timeout`, `idle_timeout`, `handshake_timeout`, `udp_rcvbuf`,
`relp_window`. `zone`: the zone of timestamps without a UTC offset (the local zone unless set;
a listener's `?tz=` overrides it).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import tzinfo
from typing import Any, Protocol, cast

from syslogkit.transports.tls import ServerTLSConfig

from .config import Limits, ListenAddress, parse_listen_url, zone_of
from .pipeline import Pipeline
from .routes import Router
from .sinks.base import Sink, tell_stderr
from .sources import (
    Listener,
    RelpConnection,
    StreamConnection,
    StreamListener,
    UdpListener,
    stop_all,
)
from .systemd import take_socket

__all__ = ["Collector", "CollectorThread", "TLSConfig"]

#: the collector's TLS settings: the one server settings class of `transports.tls`
TLSConfig = ServerTLSConfig


class Source(Protocol):
    """A source that is not a socket (a JetStream consumer: `collector.nats`): it feeds the
    pipeline from `start()`, stops taking new records at `stop_fetching()` and releases what it
    holds at `close()`, after the pipeline's last commit."""

    url: str

    def start(self, pipeline: Pipeline) -> None: ...

    def stop_fetching(self) -> None: ...

    def close(self) -> None: ...

    def stats_dict(self) -> dict[str, Any]: ...


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
        zone: str | tzinfo | None = None,
        commit_interval: float = 0.02,
        max_batch: int = 5000,
        high_water: int = 50_000,
        drain_timeout: float = 2.0,
        drain_quiet: float = 0.2,
        stop_timeout: float = 10.0,
        sources: Sequence[Source] = (),
        tell: Callable[[str], None] = tell_stderr,
        router: Router | None = None,
        sockets: Sequence[socket.socket] = (),
        listener_tls: Mapping[ListenAddress, TLSConfig] | None = None,
    ) -> None:
        self.drain_timeout = drain_timeout
        self.stop_timeout = stop_timeout
        self.sources = list(sources)
        self.drain_quiet = drain_quiet
        self.addresses = [
            a if isinstance(a, ListenAddress) else parse_listen_url(a) for a in listen
        ]
        if not self.addresses and not self.sources:
            raise ValueError("a collector needs at least one listen address")
        self.tls = tls
        self.limits = limits or Limits()
        self.zone = zone_of(zone)
        own = dict(listener_tls or {})
        if any(a.is_tls and a not in own for a in self.addresses) and tls is None:
            raise ValueError("a tls:// or relp+tls:// listener needs a certificate and key")
        self.ssl_context = tls.context() if tls is not None else None
        #: a listener's own TLS (its address as configured), over `ssl_context`
        self.listener_contexts = {address: config.context() for address, config in own.items()}
        self.pipeline = Pipeline(
            sinks,
            commit_interval=commit_interval,
            max_batch=max_batch,
            high_water=high_water,
            pressure=self._pressure,
            tell=tell,
            router=router,
        )
        self.listeners: list[Listener] = []
        #: sockets bound already (systemd's, or bound before dropping privileges); those no
        #: listener took stay here after `start()`
        self.unused_sockets = list(sockets)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started_at = 0.0
        self._loop_thread = 0
        self._stopped = False
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def urls(self) -> list[str]:
        """The listeners' URLs with the ports they are bound to."""
        return [listener.url for listener in self.listeners] + [s.url for s in self.sources]

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
            if isinstance(listener, StreamListener):
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
                listener = self._listener(address)
                listener.given = take_socket(self.unused_sockets, address)
                if isinstance(listener, UdpListener):
                    listener.start()
                else:
                    await listener.start()
                self.listeners.append(listener)
        except BaseException:
            await self.stop()
            raise
        self.started_at = time.time()
        for source in self.sources:
            source.start(self.pipeline)
        self._sweeper = self.loop.create_task(self._sweep())
        return self.urls

    def _listener(self, address: ListenAddress) -> UdpListener | StreamListener:
        assert self.loop is not None
        zone = self.zone if address.zone is None else zone_of(address.zone)
        if address.scheme == "udp":
            return UdpListener(address, self.pipeline, self.limits, zone)
        return StreamListener(
            address,
            self.pipeline,
            self.limits,
            zone,
            self.loop,
            self.listener_contexts.get(address, self.ssl_context) if address.is_tls else None,
            RelpConnection if address.is_relp else StreamConnection,
        )

    async def _sweep(self) -> None:
        interval = max(0.05, min(1.0, self.limits.frame_timeout / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for listener in self.listeners:
                if isinstance(listener, StreamListener):
                    listener.sweep(now)

    async def add_listener(
        self, address: ListenAddress, sock: socket.socket | None = None
    ) -> UdpListener | StreamListener:
        """Bind (or take `sock`) and serve one more listener (a reload)."""
        listener = self._listener(address)
        listener.given = sock
        if isinstance(listener, UdpListener):
            listener.start()
        else:
            await listener.start()
        self.listeners.append(listener)
        return listener

    async def remove_listener(self, listener: Listener, timeout: float = 30.0) -> None:
        """Stop one listener (a reload): it takes nothing new; what its clients sent is read
        until they are quiet and committed; then its connections close."""
        loop = asyncio.get_running_loop()
        self.listeners.remove(listener)
        if isinstance(listener, UdpListener):
            await loop.run_in_executor(None, listener.stop)
        elif isinstance(listener, StreamListener):
            listener.stop_accepting()
            deadline = loop.time() + self.drain_timeout
            while loop.time() < deadline:
                active = [c.last_activity for c in listener.connections if not c.closing]
                if not active or loop.time() - max(active) >= self.drain_quiet:
                    break
                await asyncio.sleep(0.02)
            for conn in list(listener.connections):
                conn.pause()
            await loop.run_in_executor(None, self.pipeline.drain, timeout)
            await listener.close_connections(min(timeout, 2.0))
            if listener.server is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(listener.server.wait_closed(), 2.0)

    def set_tls(
        self,
        context: ssl.SSLContext | None,
        own: Mapping[ListenAddress, ssl.SSLContext] | None = None,
        kept: Mapping[ListenAddress, Listener] | None = None,
    ) -> None:
        """The TLS contexts of new handshakes from now on (a reload read the files again): the
        collector's, listeners' own by their configured address, and `kept` (configured address
        -> running listener) the listeners to give them to; open sessions go on with theirs."""
        self.ssl_context = context
        self.listener_contexts = dict(own or {})
        for address, listener in (kept or {}).items():
            if isinstance(listener, StreamListener) and address.is_tls:
                listener.ssl_context = self.listener_contexts.get(address, context)

    async def stop(self, timeout: float | None = None) -> None:
        """Stop accepting; read on until clients are quiet (`drain_quiet` seconds, at most
        `drain_timeout`); commit everything received; answer RELP senders; close.

        A sink that keeps failing is retried for `timeout` seconds (`stop_timeout` by
        default); then what it holds is given up, counted and told (`Pipeline.close`)."""
        timeout = self.stop_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        if self._stopped:
            return
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for source in self.sources:
            source.stop_fetching()
        streams = [x for x in self.listeners if isinstance(x, StreamListener)]
        udps = [x for x in self.listeners if isinstance(x, UdpListener)]
        for stream in streams:
            stream.stop_accepting()
            # paused (a sink failing): read what clients sent all the same, so that what no
            # sink can take is counted exactly at close instead of vanishing with the socket
            stream.resume()
        udp_done = loop.run_in_executor(None, stop_all, udps) if udps else None
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
        self.pipeline.stop_waiting()  # a sink full of records keeps or counts, never waits now
        drained = await loop.run_in_executor(None, self.pipeline.drain, timeout)
        for _ in range(3):
            await asyncio.sleep(0)
        for stream in streams:
            await stream.close_connections(min(timeout, 2.0))
        for stream in streams:
            if stream.server is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stream.server.wait_closed(), 2.0)
        await loop.run_in_executor(None, self.pipeline.close, timeout if drained else 0.0)
        for source in self.sources:  # after the commits: their acknowledgements go out
            await loop.run_in_executor(None, source.close)

    def stats(self) -> dict[str, Any]:
        """Counters: per listener, and for the pipeline."""
        return {
            "listeners": [listener.stats_dict() for listener in self.listeners]
            + [source.stats_dict() for source in self.sources],
            "pipeline": self.pipeline.stats_dict(),
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

    def stop(self, timeout: float | None = None) -> None:
        if not self._started:
            return
        self._started = False
        bound = self.collector.stop_timeout if timeout is None else timeout
        try:
            asyncio.run_coroutine_threadsafe(self.collector.stop(timeout), self._loop).result(
                2 * bound + 15
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
