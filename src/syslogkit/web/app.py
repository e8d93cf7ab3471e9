"""The web application (Starlette): the page, its JSON API, the live tail (Server-Sent Events).

Routes:

- `GET /`                       the page (static/index.html; its script is static/app.js)
- `GET /static/...`             the page's files (uPlot vendored with its licence); nothing
                                outside that folder is reachable
- `GET /api/messages`           a page of matching records, newest first (`before=ID` pages on;
                                `last_id`: the newest id when it was read, where a tail starts)
- `GET /api/messages/{id}`      one record whole
- `GET /api/histogram`          counts per time bucket and severity over the range
- `GET /api/facets`             top hosts and apps with their counts
- `GET /api/stream`             matching records as they are stored (SSE, `after=ID`)
- `GET /api/export`             the matching records as JSON lines (a download)
- `GET /healthz`                the store can be read: `{"ok": true, "last_id": N}`

Every API takes the page's URL parameters (see `params.py`); a bad one answers 400 with
`{"error": reason, "field": name}`; a query (`q`, docs/query.md) that does not parse is such a
400 on field `q`, with its `column`.
Store access runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from syslogkit.collector import Filters, StoreError, record_to_dict

from . import render
from .params import BadRequest, View, parse_view
from .security import (
    HEADERS,
    Sessions,
    cookie_name,
    host_header_is_loopback,
    query_token_matches,
    token_matches,
)
from .source import SearchError, StoreReader

__all__ = ["STATIC", "Guard", "create_app"]

_log = logging.getLogger("syslogkit.web")

STATIC = Path(__file__).resolve().parent / "static"
#: how often the live tail looks for new records, and sends a keep-alive comment
TAIL_INTERVAL = 0.5
KEEPALIVE = 15.0
TAIL_BATCH = 500
FACETS = 10
#: one bucket wider than any time a message can carry (year 9999 is 2.5e11 s from 1970)
_FOREVER = 1e13

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _error(
    status: int, reason: str, field: str | None = None, column: int | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"error": reason}
    if field is not None:
        body["field"] = field
    if column is not None:
        body["column"] = column
    return JSONResponse(body, status_code=status)


def _view(request: Request) -> View:
    return parse_view(parse_qs(request.url.query, keep_blank_values=True))


def _guarded(
    handler: Callable[[Request, StoreReader], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Bad parameters -> 400 with the reason, an unreadable store -> 503, never a 500."""

    async def endpoint(request: Request) -> Response:
        reader: StoreReader = request.app.state.reader
        try:
            return await handler(request, reader)
        except BadRequest as exc:
            field, _, reason = str(exc).partition(": ")
            return _error(400, reason or field, field if reason else None, exc.column)
        except SearchError as exc:
            return _error(
                400,
                f"not valid full-text syntax: {exc} (put text in double quotes to search it as"
                " written)",
                "q",
            )
        except StoreError as exc:
            return _error(503, f"cannot read the store: {exc}")

    return endpoint


# -- endpoints -------------------------------------------------------------------------------------


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})


async def messages(request: Request, reader: StoreReader) -> Response:
    view = _view(request)
    last_id = await run_in_threadpool(reader.last_id)  # before the page: the tail starts here
    records = await run_in_threadpool(
        reader.page, view.filters, before=view.before, limit=view.limit
    )
    rows = [render.summary(r) for r in records]
    more = len(rows) == view.limit and rows[-1]["id"] is not None
    return JSONResponse(
        {"records": rows, "next_before": rows[-1]["id"] if more else None, "last_id": last_id}
    )


async def message(request: Request, reader: StoreReader) -> Response:
    text = request.path_params["record_id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise BadRequest(f"id: {text!r} is not a record id")
    record = await run_in_threadpool(reader.detail, int(text))
    if record is None:
        return _error(404, f"no record {text}")
    return JSONResponse(render.detail(record))


async def histogram(request: Request, reader: StoreReader) -> Response:
    """The buckets over the view's range; `later`: the matching messages dated after the
    drawn range (a sender's clock ahead, an open-ended range), counted in `total` so that the
    total is the number of messages the list holds."""
    view = _view(request)
    now = time.time()
    since, until = view.since, view.until if view.until is not None else now
    if since is None:
        span = await run_in_threadpool(reader.time_span, view.filters, view.column)
        since = span[0] if span else until - 3600
        until = max(until, span[1] + 1) if span else until
    step = render.bucket_step(since, until)
    start = since // step * step
    buckets = int(-(-(until - start) // step))
    result = await run_in_threadpool(
        reader.histogram,
        view.filters,
        start=start,
        step=step,
        buckets=buckets,
        column=view.column,
    )
    later = 0
    end = start + buckets * step
    if view.until is None:  # open-ended: what is dated after the drawn range is listed too
        beyond = await run_in_threadpool(
            reader.histogram,
            view.during(end, None),
            start=end,
            step=_FOREVER,
            buckets=1,
            column=view.column,
        )
        later = beyond.total
    body = render.histogram(result)
    body.update(since=since, until=until, later=later, total=body["total"] + later)
    return JSONResponse(body)


async def facets(request: Request, reader: StoreReader) -> Response:
    view = _view(request)
    found = await run_in_threadpool(reader.facets, view.filters, limit=FACETS)
    return JSONResponse({name: [list(pair) for pair in pairs] for name, pairs in found.items()})


async def stream(request: Request, reader: StoreReader) -> Response:
    """The live tail: what arrives and matches the view's other filters, whatever its
    timestamp (a sender's clock years off still shows as it arrives)."""
    view = _view(request)
    filters = view.untimed
    await run_in_threadpool(reader.check_search, filters.search)
    after = view.after if view.after is not None else await run_in_threadpool(reader.last_id)
    return StreamingResponse(
        _tail(request, reader, filters, after),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _tail(
    request: Request, reader: StoreReader, filters: Filters, after: int
) -> AsyncIterator[str]:
    """The live tail: `records` events (a JSON list of rows, oldest first), `id:` the last id
    sent so a reconnecting EventSource resumes there; a comment as keep-alive.

    The newest id is read before the matching records are, and only ids up to it are taken:
    a record committed between the two reads is picked up next time, never skipped.
    """
    yield f"retry: 2000\nevent: hello\ndata: {json.dumps({'after': after})}\n\n"
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        try:
            top = await run_in_threadpool(reader.last_id)
            records = (
                await run_in_threadpool(reader.after, filters, after, up_to=top, limit=TAIL_BATCH)
                if top > after
                else []
            )
        except StoreError as exc:
            yield f"event: failure\ndata: {json.dumps({'error': str(exc)})}\n\n"
            return
        if records:
            after = records[-1].id or after
            rows = [render.summary(r) for r in records]
            yield f"id: {after}\nevent: records\ndata: {json.dumps(rows)}\n\n"
            quiet_since = time.monotonic()
            if len(records) == TAIL_BATCH:
                continue
        else:
            after = max(after, top)
        if time.monotonic() - quiet_since > KEEPALIVE:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(TAIL_INTERVAL)


async def export(request: Request, reader: StoreReader) -> Response:
    view = _view(request)
    await run_in_threadpool(reader.check_search, view.filters.search)
    return StreamingResponse(
        _json_lines(reader.export(view.filters)),
        media_type="application/x-ndjson",
        headers={
            "content-disposition": 'attachment; filename="syslog.jsonl"',
            "cache-control": "no-store",
        },
    )


#: characters `str.splitlines()` (and some JSON-lines readers) break lines at: escaped in a download
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def json_line(record: Any) -> str:
    """One record as one line of JSON whatever it holds (U+2028, U+2029, U+0085 escaped)."""
    text = json.dumps(record_to_dict(record), ensure_ascii=False, default=str)
    return text.translate(_LINE_BREAKS)


def _json_lines(records: Iterator[Any], batch: int = 500) -> Iterator[bytes]:
    lines: list[str] = []
    for record in records:
        lines.append(json_line(record))
        if len(lines) >= batch:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()


async def healthz(request: Request, reader: StoreReader) -> Response:
    last = await run_in_threadpool(reader.last_id)
    return JSONResponse({"ok": True, "last_id": last})


# -- the guard: token, Host, security headers ------------------------------------------------------


class Guard:
    """ASGI middleware around the whole application: the security headers on every answer (an
    error of the application's own included), `Cache-Control: no-store` on every answer but
    the static files, and the access rule of `security.py` on every request (the event stream
    and static files included). Scopes other than HTTP and lifespan are refused. `state` is
    the application's (`state.reader`: the store reader)."""

    def __init__(self, app: ASGIApp, token: str | None, state: Any = None) -> None:
        self.app = app
        self.token = token
        self.state = state
        self.sessions = Sessions(token) if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        started = False
        cacheable = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                if not cacheable and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            _log.exception("the web application failed on %s", scope.get("path"))
            if not started:
                await _error(500, "internal error (see the server's log)")(
                    scope, receive, send_with_headers
                )

    def _refusal(self, scope: Scope) -> Response | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.token is None or self.sessions is None:
            if not host_header_is_loopback(headers.get("host")):
                return _error(403, "the Host header must name a loopback address")
            return None
        server = scope.get("server") or (None, None)
        cookie = cookie_name(server[1])
        if scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"), True)
            presented = query.get("token", [None])[-1]
            if presented is not None and query_token_matches(self.token, presented):
                rest = {k: v for k, v in query.items() if k != "token"}
                location = "/?" + urlencode(rest, True) if rest else "/"
                response = Response(status_code=303, headers={"location": location})
                response.set_cookie(
                    cookie,
                    self.sessions.issue(),
                    max_age=int(self.sessions.ttl),
                    httponly=True,
                    samesite="strict",
                    secure=scope.get("scheme") == "https",
                    path="/",
                )
                return response
        if token_matches(
            self.token,
            self.sessions,
            authorization=headers.get("authorization"),
            cookie_header=headers.get("cookie"),
            cookie=cookie,
        ):
            return None
        refused: Response = _error(
            401,
            "a valid token is required (Authorization: Bearer TOKEN, or open /?token=TOKEN once)",
        )
        refused.headers["www-authenticate"] = "Bearer"
        return refused


def create_app(db: str | Path, *, token: str | None = None) -> Guard:
    """The application over the store at `db` (opened read-only; `StoreError` if it is not
    one), inside its guard. With `token`, every request must present it (see `security.py`);
    `.state.reader` is the store reader."""
    reader = StoreReader(db)
    routes = [
        Route("/", index),
        Route("/healthz", _guarded(healthz)),
        Route("/api/messages", _guarded(messages)),
        Route("/api/messages/{record_id}", _guarded(message)),
        Route("/api/histogram", _guarded(histogram)),
        Route("/api/facets", _guarded(facets)),
        Route("/api/stream", _guarded(stream)),
        Route("/api/export", _guarded(export)),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        reader.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.reader = reader
    return Guard(app, token=token, state=app.state)
