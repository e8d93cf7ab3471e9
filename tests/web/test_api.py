"""The web's HTTP API over a store a real collector fills: JSON endpoints, the event stream, the
export, bad parameters, the token rule, the headers, and static files kept in their folder."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from support.web import WebStack, get, line
from syslogkit.web.security import ExposureError, check_exposure

TOKEN = "correct-horse-battery-staple"


def api(stack: WebStack, path: str, **params: Any) -> Any:
    status, _, body = get(stack.url, path + "?" + urlencode(params, doseq=True))
    assert status == 200, body
    return json.loads(body)


@pytest.fixture(scope="module")
def filled(stack: WebStack) -> WebStack:
    stack.send(
        *[line(f"api message {n}", app="api", host=f"h{n % 2}", severity=n % 8) for n in range(10)],
        b"<999>not syslog at all",
    )
    return stack


def test_messages_come_newest_first_in_pages(filled: WebStack) -> None:
    first = api(filled, "/api/messages", app="api", limit=4)
    assert [r["msg"] for r in first["records"]] == [f"api message {n}" for n in (9, 8, 7, 6)]
    second = api(filled, "/api/messages", app="api", limit=4, before=first["next_before"])
    assert [r["msg"] for r in second["records"]] == [f"api message {n}" for n in (5, 4, 3, 2)]
    last = api(filled, "/api/messages", app="api", limit=4, before=second["next_before"])
    assert len(last["records"]) == 2 and last["next_before"] is None
    assert first["last_id"] >= first["records"][0]["id"]


def test_histogram_counts_by_severity_and_totals_the_matches(filled: WebStack) -> None:
    h = api(filled, "/api/histogram", app="api", range="1h")
    assert h["total"] == 10
    assert {k: sum(v) for k, v in h["series"].items()} == {
        str(s): 2 if s < 2 else 1 for s in range(8)
    }
    assert len(h["times"]) == h["buckets"] and h["step"] == 60
    assert h["start"] <= time.time() <= h["start"] + h["buckets"] * h["step"]


def test_facets_count_hosts_and_apps(filled: WebStack) -> None:
    facets = api(filled, "/api/facets", app="api", severity="warning")
    # warning and above: messages 0-4 and 8-9 (severity n % 8); h0 the even ones
    assert facets == {"hosts": [["h0", 4], ["h1", 3]], "apps": [["api", 7]]}


def test_a_record_whole_with_its_raw_bytes_escaped(filled: WebStack) -> None:
    newest = api(filled, "/api/messages", limit=1, range="all")["records"][0]
    record = api(filled, f"/api/messages/{newest['id']}")
    assert record["raw"] == "<999>not syslog at all"
    assert record["raw_escaped"] == "<999>not syslog at all"
    assert record["error"] and record["transport"] == "tcp"
    status, _, body = get(filled.url, "/api/messages/999999999")
    assert status == 404 and b"no record" in body


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ({"severity": "loud"}, "severity", "loud"),
        ({"limit": "0"}, "limit", "between 1 and 1000"),
        ({"limit": "ten"}, "limit", "not a whole number"),
        ({"range": "3y"}, "range", "not one of"),
        ({"since": "yesterday"}, "since", "neither epoch seconds nor an ISO 8601 time"),
        ({"since": "2000", "until": "1000"}, "until", "later than since"),
        ({"transport": "smtp"}, "transport", "not one of"),
        ({"facility": "kitchen"}, "facility", "kitchen"),
        ({"colour": "red"}, "colour", "unknown parameter"),
        ({"by": "tomorrow"}, "by", "not time or received"),
        ({"q": "disk AND"}, "q", "column 9: expected a word"),
        ({"q": '"unterminated'}, "q", 'expected a closing "'),
        ({"q": "host:web1 AND (error"}, "q", "column 21: expected ')'"),
        ({"q": "order@32473.id:42"}, "q", "`syslogkit query` runs them"),
    ],
)
def test_bad_parameters_answer_400_with_the_reason(
    filled: WebStack, query: dict[str, str], field: str, reason: str
) -> None:
    for path in ("/api/messages", "/api/histogram", "/api/facets", "/api/export", "/api/stream"):
        status, _, body = get(filled.url, path + "?" + urlencode(query))
        assert status == 400, (path, body)
        answer = json.loads(body)
        assert answer["field"] == field and reason in answer["error"], answer


@pytest.mark.parametrize(
    "expression",
    [
        "api message",
        'host:h1 AND ("message 3" OR "message 5")',
        "app:api severity:<=err -host:h0",
        "severity:warning..err OR facility:kern",
        "app:ap* NOT (message 2)",
        "status:unparsed",
    ],
)
def test_the_api_and_the_command_answer_an_expression_alike(
    filled: WebStack, expression: str
) -> None:
    by_api = api(filled, "/api/messages", q=expression, range="all", limit=1000)["records"]
    result = subprocess.run(
        [sys.executable, "-m", "syslogkit", "query", "--db", str(filled.db), "--json", expression],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    by_cli = [json.loads(row)["id"] for row in result.stdout.splitlines()]
    assert by_cli and [r["id"] for r in by_api] == list(reversed(by_cli))


def test_the_event_stream_sends_records_stored_after_it_opened(filled: WebStack) -> None:
    last = api(filled, "/api/messages", limit=1)["last_id"]
    host, port = filled.url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/api/stream?" + urlencode({"app": "streamed", "after": last}))
        response = conn.getresponse()
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.readline().startswith(b"retry:")
        filled.send(line("not this one", app="other"), line("streamed one", app="streamed"))
        deadline = time.monotonic() + 10
        block: list[bytes] = []
        lines: list[bytes] = []
        while time.monotonic() < deadline and b"event: records\n" not in block:
            text = response.readline()  # an event ends with a blank line
            lines, block = ([], lines) if text == b"\n" else ([*lines, text], block)
        assert b"event: records\n" in block, "no records event within 10 s"
        data = next(text for text in block if text.startswith(b"data: "))
        rows = json.loads(data.removeprefix(b"data: "))
        assert [r["msg"] for r in rows] == ["streamed one"]
        assert f"id: {rows[0]['id']}\n".encode() in block
    finally:
        conn.close()


def test_export_is_json_lines_of_the_matching_records(filled: WebStack) -> None:
    status, headers, body = get(filled.url, "/api/export?app=api&severity=1")
    assert status == 200
    assert "attachment" in headers["content-disposition"]
    lines = [json.loads(text) for text in body.decode().splitlines()]
    assert [r["msg"] for r in lines] == [
        "api message 9",
        "api message 8",
        "api message 1",
        "api message 0",
    ]
    assert all("raw" in r and "received_at" in r for r in lines)


def test_every_answer_carries_a_strict_content_security_policy(filled: WebStack) -> None:
    for path in ("/", "/static/app.js", "/api/messages", "/api/messages?limit=x", "/nowhere"):
        _, headers, _ = get(filled.url, path)
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-content-type-options"] == "nosniff"
    status, _, page = get(filled.url, "/")
    assert status == 200 and b"<script>" not in page and b"onload=" not in page


@pytest.mark.parametrize(
    "path",
    [
        "/static/../source.py",
        "/static/..%2fsource.py",
        "/static/%2e%2e/source.py",
        "/static/%2e%2e%2f%2e%2e%2fcollector/store/db.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/..\\source.py",
    ],
)
def test_static_files_cannot_escape_their_folder(filled: WebStack, path: str) -> None:
    status, _, body = get(filled.url, path)
    assert status == 404, (status, body[:200])
    assert b"import" not in body and b"root:" not in body


def test_the_vendored_chart_library_is_served_with_its_licence(filled: WebStack) -> None:
    status, _, body = get(filled.url, "/static/uPlot.iife.min.js")
    assert status == 200 and body.startswith(b"/*! https://github.com/leeoniya/uPlot")
    status, _, body = get(filled.url, "/static/uPlot.LICENSE")
    assert status == 200 and b"MIT License" in body


def test_without_a_token_only_loopback_host_names_are_answered(filled: WebStack) -> None:
    status, _, body = get(filled.url, "/api/messages", {"Host": "attacker.example:8514"})
    assert status == 403 and b"loopback" in body
    assert get(filled.url, "/healthz", {"Host": "localhost:8514"})[0] == 200


def test_listening_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ExposureError, match=r"refusing to listen on 0\.0\.0\.0 without --token"):
        check_exposure("0.0.0.0", None)
    with pytest.raises(ExposureError, match="too short"):
        check_exposure("0.0.0.0", "short")
    check_exposure("0.0.0.0", TOKEN)
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.1.2.3"):
        check_exposure(host, None)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with WebStack(tmp_path_factory.mktemp("token"), token=TOKEN) as running:
        running.send(line("secret", app="guarded"))
        yield running


@pytest.mark.parametrize(
    "path", ["/", "/static/app.js", "/api/messages", "/api/stream", "/api/export", "/healthz"]
)
def test_with_a_token_every_request_needs_it(guarded: WebStack, path: str) -> None:
    status, headers, body = get(guarded.url, path)
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert b"secret" not in body
    wrong = {"Authorization": "Bearer " + TOKEN[:-1] + "X"}
    assert get(guarded.url, path, wrong)[0] == 401
    assert get(guarded.url, path + "?token=nope")[0] == 401


def test_the_token_as_bearer_or_once_in_the_url_then_as_a_cookie(guarded: WebStack) -> None:
    status, _, body = get(guarded.url, "/api/messages", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and json.loads(body)["records"][0]["msg"] == "secret"
    status, headers, _ = get(guarded.url, f"/?app=guarded&token={TOKEN}")
    assert status == 303 and headers["location"] == "/?app=guarded"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    jar = {"Cookie": cookie.split(";", 1)[0]}
    assert get(guarded.url, "/api/messages", jar)[0] == 200
    host, port = guarded.url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/api/stream", headers=jar)
        response = conn.getresponse()
        assert response.status == 200 and response.readline().startswith(b"retry:")
    finally:
        conn.close()


def test_healthz_says_the_store_is_readable(filled: WebStack) -> None:
    status, _, body = get(filled.url, "/healthz")
    assert status == 200 and json.loads(body)["ok"] is True


def test_a_missing_store_is_refused_at_start(tmp_path: Path) -> None:
    from syslogkit.collector import StoreError
    from syslogkit.web import WebServer

    with pytest.raises(StoreError, match="no store"):
        WebServer(tmp_path / "missing.db", "127.0.0.1", 0)
