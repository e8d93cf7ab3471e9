"""The collector's counters for operators: `/metrics` (Prometheus text format) and `/healthz`.

Standard library only, so `syslogkit collect --metrics ADDR` works without the `[web]` extra.

Decisions:

- `render(stats)` turns the collector's `stats()` dict (per listener, the pipeline) into the
  Prometheus text exposition format 0.0.4: counters end in `_total`, one `listener` label (the
  listener's URL), `reason`/`kind` labels for drops and framing errors. Label values are
  escaped as the format says (`\\`, `"`, newline). The stream listeners' busiest peers (at
  most `sources.base.TOP_PEERS` each) get `syslogkit_peer_*` series with a `peer` label.
- `MetricsServer` is a small threaded `http.server` in a daemon thread. It asks `snapshot()`
  for the counters on every request (the caller decides how to read them safely, e.g. on the
  collector's event loop); when that fails or takes longer than `timeout`, `/metrics` and
  `/healthz` answer 503 with the reason. `/healthz` answers 503 too while a listener or a
  sink says it is `unhealthy` in its stats (a JetStream consumer being restarted, an edge
  whose stream does not exist or is full), while a sink fails (its batches retried) and while
  the stream listeners are paused (`unhealthy`).
- Only counters are served, never message content, so it needs no token; bind it where your
  scraper can reach it. HTTPS with `ssl_context`: the handshake runs in the request's thread
  (never in the accepting one), and a client that says nothing is cut after `CLIENT_TIMEOUT`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["CONTENT_TYPE", "MetricsServer", "render", "store_bytes", "unhealthy"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: seconds a client may take to send its request (and to shake hands under TLS)
CLIENT_TIMEOUT = 10.0

#: listener counter -> (metric, help)
_LISTENER_COUNTERS = (
    ("received", "syslogkit_listener_received_total", "Frames received."),
    ("parsed", "syslogkit_listener_parsed_total", "Frames that parsed strictly."),
    ("noted", "syslogkit_listener_noted_total", "Frames parsed with notes (lenient or assumed)."),
    ("unparsed", "syslogkit_listener_unparsed_total", "Frames stored raw: not parsed at all."),
    ("bytes", "syslogkit_listener_bytes_total", "Bytes received."),
    ("connections", "syslogkit_listener_connections_total", "Connections accepted."),
    ("refused", "syslogkit_listener_refused_total", "Connections refused over the limit."),
)
_PIPELINE_COUNTERS = (
    ("queued", "syslogkit_pipeline_queued_total", "Records handed to the sinks."),
    ("committed", "syslogkit_pipeline_committed_total", "Records committed by the sinks."),
    ("batches", "syslogkit_pipeline_batches_total", "Batches committed."),
    ("errors", "syslogkit_pipeline_errors_total", "Sink errors."),
)

#: a sink's lane: key -> (metric, type, help)
_SINK_SAMPLES = (
    ("committed", "syslogkit_sink_committed_total", "counter", "Records the sink committed."),
    ("waiting", "syslogkit_sink_waiting", "gauge", "Records waiting for the sink."),
    ("failures", "syslogkit_sink_failures_total", "counter", "Failed writes/commits (retried)."),
    ("failing", "syslogkit_sink_failing", "gauge", "1 while the sink's last attempt failed."),
    (
        "retention_deleted",
        "syslogkit_sink_retention_deleted_total",
        "counter",
        "Messages deleted by retention (age, size, or to keep --min-free).",
    ),
    (
        "retention_deleted_young",
        "syslogkit_sink_retention_deleted_young_total",
        "counter",
        "Messages the size cap deleted while younger than --retention-age (the cap is too small).",
    ),
    (
        "writer_restarts",
        "syslogkit_sink_writer_restarts_total",
        "counter",
        "Times the store's writer process died and was restarted.",
    ),
    (
        "maybe_lost",
        "syslogkit_sink_maybe_lost_total",
        "counter",
        "Records forwarded but never confirmed by the destination (may be lost).",
    ),
)


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))  # type: ignore[arg-type]


class _Families:
    """Samples grouped by metric name, written out with one HELP and TYPE line each."""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._meta: dict[str, tuple[str, str]] = {}
        self._samples: dict[str, list[str]] = {}

    def add(
        self,
        name: str,
        kind: str,
        help_text: str,
        value: object,
        labels: Mapping[str, object] | None = None,
    ) -> None:
        if name not in self._meta:
            self._order.append(name)
            self._meta[name] = (kind, help_text)
            self._samples[name] = []
        self._samples[name].append(f"{name}{_labels(labels or {})} {_number(value)}")

    def declare(self, name: str, kind: str, help_text: str) -> None:
        if name not in self._meta:
            self._order.append(name)
            self._meta[name] = (kind, help_text)
            self._samples[name] = []

    def summary(self, name: str, help_text: str, total: float, count: int) -> None:
        """A summary without quantiles: `name_sum` and `name_count`."""
        self.declare(name, "summary", help_text)
        self._samples[name] += [f"{name}_sum {_number(total)}", f"{name}_count {_number(count)}"]

    def text(self) -> str:
        lines: list[str] = []
        for name in self._order:
            kind, help_text = self._meta[name]
            family = name.removesuffix("_total") if kind == "counter" else name
            lines.append(f"# HELP {family} {help_text}")
            lines.append(f"# TYPE {family} {kind}")
            lines.extend(self._samples[name])
        return "\n".join(lines) + "\n"


#: per-peer counter (the stream listeners' busiest peers) -> (metric, help)
_PEER_COUNTERS = (
    ("connections", "syslogkit_peer_connections_total", "Connections given to a peer."),
    ("refused", "syslogkit_peer_refused_total", "A peer's connections refused over the limits."),
    ("cut", "syslogkit_peer_cut_total", "A peer's connections cut to let another peer in."),
)


def _peers(out: _Families, url: object, peers: Any) -> None:
    """The busiest peers' counters (the listener bounds how many)."""
    for row in peers or ():
        labels = {"listener": url, "peer": row.get("peer", "?")}
        out.add(
            "syslogkit_peer_connections_active",
            "gauge",
            "Connections a peer holds now.",
            row.get("active", 0),
            labels,
        )
        for key, name, help_text in _PEER_COUNTERS:
            out.add(name, "counter", help_text, row.get(key, 0), labels)


def _listener(out: _Families, listener: Mapping[str, Any]) -> None:
    url = listener.get("url", "?")
    for key, name, help_text in _LISTENER_COUNTERS:
        if key in listener:
            out.add(name, "counter", help_text, listener[key], {"listener": url})
    if "active" in listener:
        out.add(
            "syslogkit_listener_connections_active",
            "gauge",
            "Connections open now.",
            listener["active"],
            {"listener": url},
        )
    for reason, n in sorted((listener.get("dropped") or {}).items()):
        out.add(
            "syslogkit_listener_dropped_total",
            "counter",
            "What was not stored, and connections cut, by reason.",
            n,
            {"listener": url, "reason": reason},
        )
    for kind, n in sorted((listener.get("framing") or {}).items()):
        out.add(
            "syslogkit_listener_framing_errors_total",
            "counter",
            "Framing errors by kind.",
            n,
            {"listener": url, "kind": kind},
        )
    _peers(out, url, listener.get("peers"))


#: the routes' counters (`collector/routes.Router.stats`)
_ROUTE_COUNTERS = (
    ("dropped", "Records a route dropped (drop = true)."),
    ("unrouted", "Records no route sent to any sink."),
    ("rate_limited", "Records over a route's rate limit per source (not given to its sinks)."),
)


def _reload(out: _Families, reload: Mapping[str, Any] | None) -> None:
    """SIGHUP's reloads of the config file (cli/reload.py)."""
    if not reload:
        return
    out.add("syslogkit_reloads_total", "counter", "Config reloads applied.", reload["count"])
    out.add(
        "syslogkit_reload_failures_total",
        "counter",
        "Config reloads refused (the previous config kept running).",
        reload["failures"],
    )
    for key, help_text in (
        ("last_success", "When the config was last reloaded (epoch seconds)."),
        ("last_failure", "When a reload was last refused (epoch seconds)."),
    ):
        if reload.get(key):
            out.add(f"syslogkit_reload_{key}_timestamp_seconds", "gauge", help_text, reload[key])


def _pipeline_health(out: _Families, pipeline: Mapping[str, Any]) -> None:
    """Paused seconds, records given up at close by reason, and each sink's lane."""
    if "paused_seconds" in pipeline:
        out.add(
            "syslogkit_pipeline_paused_seconds_total",
            "counter",
            "Seconds the stream listeners were paused (the pipeline full).",
            pipeline["paused_seconds"],
        )
        out.add(
            "syslogkit_pipeline_paused",
            "gauge",
            "1 while the stream listeners are paused.",
            bool(pipeline.get("paused")),
        )
    for reason in ("not_stored", "unanswered"):
        if reason in pipeline:
            out.add(
                "syslogkit_pipeline_given_up_total",
                "counter",
                "Records given up at close with a sink failing: not_stored (lost), unanswered"
                " (their RELP or JetStream senders keep them).",
                pipeline[reason],
                {"reason": reason},
            )
    for sink in pipeline.get("sinks") or ():
        labels = {"sink": sink.get("name", "?")}
        for key, name, kind, help_text in _SINK_SAMPLES:
            if key in sink:
                out.add(name, kind, help_text, sink[key], labels)


def render(stats: Mapping[str, Any], *, store_size: int | None = None) -> str:
    """The Prometheus text for a collector's `stats()` (plus the store's size in bytes)."""
    out = _Families()
    out.add("syslogkit_up", "gauge", "1 while the collector answers.", 1)
    if stats.get("started_at"):
        out.add(
            "syslogkit_start_time_seconds",
            "gauge",
            "When the collector started (epoch seconds).",
            stats["started_at"],
        )
    out.declare("syslogkit_listener_dropped_total", "counter", "What was not stored, by reason.")
    for listener in stats.get("listeners") or ():
        _listener(out, listener)
    pipeline = stats.get("pipeline") or {}
    for key, name, help_text in _PIPELINE_COUNTERS:
        if key in pipeline:
            out.add(name, "counter", help_text, pipeline[key])
    if "commit_seconds" in pipeline and "batches" in pipeline:
        out.summary(
            "syslogkit_pipeline_commit_seconds",
            "From a batch's hand-over to the sinks until every sink committed it.",
            pipeline["commit_seconds"],
            pipeline["batches"],
        )
    if "pending" in pipeline:
        out.add(
            "syslogkit_pipeline_pending",
            "gauge",
            "Records waiting to be committed.",
            pipeline["pending"],
        )
    _pipeline_health(out, pipeline)
    routes = stats.get("routes") or {}
    for key, help_text in _ROUTE_COUNTERS:
        if key in routes:
            out.add(f"syslogkit_routes_{key}_total", "counter", help_text, routes[key])
    _reload(out, stats.get("reload"))
    if store_size is not None:
        out.add(
            "syslogkit_store_bytes",
            "gauge",
            "Size of the store on disk, as du of its folder (WAL and side files included).",
            store_size,
        )
    return out.text()


def unhealthy(stats: Mapping[str, Any]) -> str | None:
    """Why `/healthz` is not ok: the `unhealthy` reason a listener gives in its stats (a
    JetStream consumer being restarted) or a sink in its (`forward`: an edge whose stream does
    not exist or is full), a sink failing (its batches retried), the stream listeners paused;
    None when all is fine."""
    for listener in stats.get("listeners") or ():
        reason = listener.get("unhealthy")
        if reason:
            return f"{listener.get('url', '?')}: {reason}"
    for sink in stats.get("forward") or ():
        reason = sink.get("unhealthy")
        if reason:
            return str(reason)
    pipeline = stats.get("pipeline") or {}
    failing = pipeline.get("failing") or []
    if failing:
        return f"sink failing: {', '.join(failing)} ({pipeline.get('last_error')})"
    if pipeline.get("paused"):
        return f"stream listeners paused: {pipeline.get('pending', '?')} records wait"
    return None


def store_bytes(path: str | os.PathLike[str] | None) -> int | None:
    """The store's size on disk as `du` says (None without a store): every file of its folder,
    WAL and side files included (a store of an earlier version: its file and side files)."""
    if path is None:
        return None
    base = os.fspath(path)
    if os.path.isdir(base):
        names = [os.path.join(base, name) for name in os.listdir(base)]
    else:
        names = [f"{base}{suffix}" for suffix in ("", "-wal", "-shm")]
    total = 0
    for name in names:
        with contextlib.suppress(OSError):
            total += os.stat(name, follow_symlinks=False).st_blocks * 512
    return total


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/metrics", "/healthz"):
            self._answer(404, "not found: try /metrics or /healthz\n")
            return
        try:
            stats = self.server.owner.read()
        except Exception as exc:
            self._answer(503, f"the collector does not answer: {exc or type(exc).__name__}\n")
            return
        if path == "/healthz":
            reason = unhealthy(stats)
            if reason is not None:
                self._answer(503, f"not ok: {reason}\n")
                return
            self._answer(200, "ok\n")
            return
        size = store_bytes(self.server.owner.store_path)
        self._answer(200, render(stats, store_size=size), CONTENT_TYPE)

    def _answer(self, status: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a scrape every few seconds is not news."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: MetricsServer
    ssl_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.ssl_context is not None:  # the handshake on first read, in the request's thread
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """`/metrics` and `/healthz` on `host:port` (port 0: any free port), from a thread; HTTPS
    with `ssl_context`."""

    def __init__(
        self,
        host: str,
        port: int,
        snapshot: Callable[[], Mapping[str, Any]],
        *,
        store_path: str | os.PathLike[str] | None = None,
        timeout: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.store_path = store_path
        self.timeout = timeout
        host = host.strip("[]")
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.owner = self
        self._server.ssl_context = ssl_context
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        scheme = "https" if self._server.ssl_context is not None else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}/metrics"

    def read(self) -> Mapping[str, Any]:
        """The snapshot, or an exception when it takes longer than `timeout`."""
        result: list[Mapping[str, Any]] = []
        errors: list[BaseException] = []

        def call() -> None:
            try:
                result.append(self.snapshot())
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=call, daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(self.timeout)
        if errors:
            raise errors[0]
        if not result:
            raise TimeoutError(f"no counters within {time.monotonic() - started:.1f} s")
        return result[0]

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="syslogkit-metrics", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
