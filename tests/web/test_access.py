"""Who gets in, over what, and what every answer says (issue 24, items 4-8, 11, 12): the session
cookie that is not the token, a Cookie header other applications made a mess of, weak tokens,
names that only look like loopback, HTTPS (the page in a real Chromium), and the answers to
requests the application did not expect."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from support.peers.certs import PKI, client_context, make_pki
from support.peers.ports import free_ports
from support.web import Watched, WebStack, get, line
from syslogkit.cli.main import main
from syslogkit.collector import Store
from syslogkit.collector.metrics import MetricsServer
from syslogkit.collector.sources.base import tls_subject
from syslogkit.web.security import (
    ExposureError,
    Sessions,
    check_exposure,
    cleartext_warning,
    cookie_name,
    new_token,
    token_bits,
)

TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    with WebStack(tmp_path_factory.mktemp("access"), token=TOKEN) as running:
        running.send(line("for your eyes", app="guarded"))
        yield running


def port_of(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def session_cookie(url: str) -> str:
    """`name=value` of the session cookie the page's `?token=` sets."""
    status, headers, _ = get(url, f"/?token={TOKEN}")
    assert status == 303, status
    return str(headers["set-cookie"]).split(";", 1)[0]


# -- 5: the cookie is not the token --------------------------------------------------------------


def test_the_page_opened_with_the_token_keeps_a_session_cookie_named_after_the_port_not_the_token(
    guarded: WebStack, watched: Watched
) -> None:
    page = watched.page
    page.goto(guarded.url + "?" + urlencode({"app": "guarded", "token": TOKEN}))
    page.wait_for_selector("body[data-loaded]")
    assert "token" not in page.url and page.url.endswith("/?app=guarded")
    assert page.locator("#rows tr td.msg").all_inner_texts() == ["for your eyes"]
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == [f"syslogkit_session_{port_of(guarded.url)}"]
    value = cookies[0]["value"]
    assert TOKEN not in value and cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert cookies[0]["expires"] > 0 and not cookies[0]["secure"]  # plain HTTP here
    # the session value is no token
    assert get(guarded.url, "/api/messages", {"Authorization": f"Bearer {value}"})[0] == 401


def test_the_token_in_the_url_is_taken_on_the_page_only(guarded: WebStack) -> None:
    for path in ("/api/messages", "/api/export", "/healthz", "/static/app.js"):
        assert get(guarded.url, f"{path}?token={TOKEN}")[0] == 401, path
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    status, _, body = get(guarded.url, f"/api/messages?token={TOKEN}", bearer)
    assert status == 400 and json.loads(body)["field"] == "token"


def test_a_session_ends_at_its_expiry_and_with_a_new_token() -> None:
    sessions = Sessions(TOKEN, ttl=60)
    value = sessions.issue(now=1000)
    assert sessions.valid(value, now=1059)
    assert not sessions.valid(value, now=1060)
    assert not Sessions(TOKEN + "!", ttl=60).valid(value, now=1001)
    expiry, _, mac = value.partition(".")
    assert not sessions.valid(f"{int(expiry) + 3600}.{mac}", now=1001)  # expiry is signed
    assert cookie_name(8514) == "syslogkit_session_8514"


# -- 6: other applications' cookies -------------------------------------------------------------


def test_other_cookies_with_quotes_spaces_braces_backslashes_or_non_ascii_do_not_lock_out(
    guarded: WebStack,
) -> None:
    ours = session_cookie(guarded.url)
    for before in ('a="x', "b=one two", "c={}", "d=back\\slash", "e=caf\u00e9", 'f="q"x"'):
        status, _, body = get(guarded.url, "/api/messages", {"Cookie": f"{before}; {ours}"})
        assert status == 200, (before, body)
    messy = {"Cookie": f"{ours.split('=')[0]}=forged; {ours}"}
    assert get(guarded.url, "/api/messages", messy)[0] == 200


# -- 7: weak tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["a" * 40, "abababababababababababababababab", "abcabcabcabcabcabcabcabcabc", "0" * 15 + "1"],
)
def test_trivially_weak_tokens_are_refused(token: str) -> None:
    with pytest.raises(ExposureError, match=r"too easy to guess|too short"):
        check_exposure("0.0.0.0", token)


def test_random_tokens_and_passphrases_are_accepted() -> None:
    for token in (new_token(), TOKEN, os.urandom(16).hex()):
        assert token_bits(token) >= 96, token
        check_exposure("0.0.0.0", token)


def test_new_token_writes_a_good_token_readable_by_its_owner_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "web.token"
    assert main(["web", "--new-token", str(path)]) == 0
    token = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token_bits(token) >= 128
    assert str(path) in capsys.readouterr().out and token not in str(path)
    assert main(["web", "--new-token", str(path)]) == 2  # never over an existing file
    assert path.read_text().strip() == token


# -- 8: names that only look like loopback -----------------------------------------------------


def test_a_localhost_name_that_resolves_beyond_loopback_is_not_trusted() -> None:
    def rebound(host: str) -> list[str]:
        return ["10.99.0.1"]

    with pytest.raises(ExposureError, match=r"refusing to listen on evil\.localhost \(10\.99"):
        check_exposure("evil.localhost", None, resolve=rebound)
    with pytest.raises(ExposureError, match="refusing"):
        check_exposure("localhost", None, resolve=lambda host: ["127.0.0.1", "192.0.2.7"])
    assert check_exposure("localhost", None) != []  # the real resolver: loopback here


def test_the_server_binds_the_address_it_checked(tmp_path: Path) -> None:
    from syslogkit.web import WebServer

    db = tmp_path / "s.db"
    Store(db).close()
    server = WebServer(db, "localhost", 0)
    try:
        assert server.socket.getsockname()[0] in ("127.0.0.1", "::1")
    finally:
        server.stop()


# -- 4: HTTPS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_the_page_over_https_sets_a_secure_session_cookie(
    tmp_path: Path, pki: PKI, browser: Any
) -> None:
    from syslogkit.web import WebServer

    db = tmp_path / "s.db"
    Store(db).close()
    with WebServer(
        db, "127.0.0.1", 0, token=TOKEN, tls_cert=str(pki.server.cert), tls_key=str(pki.server.key)
    ) as server:
        assert server.url.startswith("https://")
        context = browser.new_context(ignore_https_errors=True)
        try:
            page = context.new_page()
            page.goto(server.url + f"?token={TOKEN}")
            page.wait_for_selector("body[data-loaded]")
            assert page.url == server.url
            (cookie,) = context.cookies()
            assert cookie["secure"] and cookie["httpOnly"]
            page.goto("about:blank")
        finally:
            context.close()
        # plain HTTP on the TLS port gets no answer
        with pytest.raises((OSError, http.client.HTTPException)):
            get(f"http://127.0.0.1:{server.port}/", "/healthz")


def test_beyond_loopback_without_tls_one_line_says_the_token_travels_in_clear() -> None:
    # (tests listen on loopback only: the rule is checked on the addresses the server binds)
    warning = cleartext_warning(["0.0.0.0"], tls=False)
    assert warning is not None and "\n" not in warning
    assert "in clear" in warning and "--tls-cert" in warning
    assert cleartext_warning(["192.0.2.1", "127.0.0.1"], tls=False) == warning
    assert cleartext_warning(["0.0.0.0"], tls=True) is None
    assert cleartext_warning(["127.0.0.1", "::1"], tls=False) is None


def test_collect_serves_the_page_and_the_metrics_over_https(tmp_path: Path, pki: PKI) -> None:
    tcp, web, metrics = free_ports(3)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "syslogkit", "collect", "-l", f"tcp://127.0.0.1:{tcp}",
            "--db", str(tmp_path / "c.db"), "--web", f"127.0.0.1:{web}",
            "--metrics", f"127.0.0.1:{metrics}", "--web-tls-cert", str(pki.server.cert),
            "--web-tls-key", str(pki.server.key),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner: list[str] = []
        while len(banner) < 8 and not any("web UI" in text for text in banner):
            banner.append(proc.stdout.readline())
        assert any(f"https://127.0.0.1:{web}/" in text for text in banner), banner
        assert any(f"https://127.0.0.1:{metrics}/metrics" in text for text in banner), banner
        context = client_context(pki.ca.cert)
        for url in (f"https://localhost:{web}/healthz", f"https://localhost:{metrics}/healthz"):
            with urllib.request.urlopen(url, context=context, timeout=10) as answer:
                assert answer.status == 200, url
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_metrics_over_https(pki: PKI) -> None:
    context = client_context(pki.ca.cert)
    with MetricsServer(
        "127.0.0.1", 0, dict, ssl_context=ssl_server(pki), store_path=None
    ) as metrics:
        assert metrics.url.startswith("https://")
        url = metrics.url.replace("127.0.0.1", "localhost")
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            assert answer.status == 200 and b"syslogkit_up 1" in answer.read()


def ssl_server(pki: PKI) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    return context


# -- 11 and 12: what every answer says --------------------------------------------------------


@pytest.fixture(scope="module")
def open_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    with WebStack(tmp_path_factory.mktemp("open")) as running:
        yield running


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/messages/%C2%B2", "id"),
        ("/api/messages/%D9%A3", "id"),
        ("/api/messages?limit=%C2%B2", "limit"),
        ("/api/messages?before=%D9%A3", "before"),
        ("/api/messages?severity=%C2%B2", "severity"),
        ("/api/messages?since=%D9%A3", "since"),
    ],
)
def test_non_ascii_digits_answer_400_with_the_reason_and_the_headers(
    open_stack: WebStack, path: str, field: str
) -> None:
    status, headers, body = get(open_stack.url, path)
    assert status == 400, body
    assert json.loads(body)["field"] == field
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"


def test_an_unexpected_failure_answers_500_with_the_security_headers_and_no_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syslogkit.web import WebServer

    db = tmp_path / "s.db"
    Store(db).close()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a fault nobody planned for")

    with WebServer(db, "127.0.0.1", 0) as server:
        monkeypatch.setattr(server.app.state.reader, "page", broken)
        status, headers, body = get(server.url, "/api/messages")
        assert status == 500 and b"Traceback" not in body
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"


def test_api_answers_are_not_cached_and_static_files_may_be(open_stack: WebStack) -> None:
    for path in ("/", "/api/messages", "/api/histogram", "/api/facets", "/healthz", "/nowhere"):
        assert get(open_stack.url, path)[1]["cache-control"] == "no-store", path
    assert get(open_stack.url, "/static/app.js")[1]["cache-control"] != "no-store"


def test_the_download_escapes_the_characters_splitlines_breaks_at(open_stack: WebStack) -> None:
    texts = ["one\u2028two", "three\u2029four", "five\x85six"]
    open_stack.send(*[line(text, app="seps") for text in texts])
    status, _, body = get(open_stack.url, "/api/export?app=seps")
    assert status == 200
    lines = body.decode().splitlines()
    assert [json.loads(text)["msg"] for text in lines] == list(reversed(texts))


def test_the_guard_refuses_scopes_that_are_not_http() -> None:
    from syslogkit.web.app import Guard

    reached: list[str] = []
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    guard = Guard(inner, token=TOKEN)
    scope = {"type": "websocket", "path": "/api/stream", "headers": [], "query_string": b""}

    async def both() -> None:
        await guard(scope, receive, send)
        await guard({"type": "something-else"}, receive, send)

    # in a thread of its own: Playwright's sync API keeps a loop running in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, both()).result(10)
    assert reached == [] and sent == [{"type": "websocket.close", "code": 1008}]


def test_a_tls_subject_is_shown_with_its_values_escaped() -> None:
    cert = {
        "subject": (
            (("organizationalUnitName", "a\nb,CN=admin"),),
            (("commonName", "#x "),),
        )
    }
    assert tls_subject(cert) == "OU=a\\0Ab\\,CN\\=admin,CN=\\#x\\ "


def test_the_400_the_http_layer_gives_a_malformed_request_carries_the_headers(
    open_stack: WebStack,
) -> None:
    with socket.create_connection(("127.0.0.1", port_of(open_stack.url)), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 400")
    assert b"content-security-policy: default-src 'none'" in head
    assert b"x-content-type-options: nosniff" in head
