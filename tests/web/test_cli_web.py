"""`syslogkit web` from the command line, and `syslogkit collect --web --metrics` end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.collector import feed, wait_for
from support.peers.ports import free_ports
from support.web import get, line
from syslogkit.cli.main import main
from syslogkit.collector import Store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    Store(path).close()
    return path


def test_web_refuses_to_listen_beyond_loopback_without_a_token(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["web", "--db", str(db), "--listen", "0.0.0.0:0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "refusing to listen on 0.0.0.0 without --token or --token-file" in err


def test_web_without_the_extra_says_how_to_get_it(db: Path) -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; from syslogkit.cli.main import main; "
        f"sys.exit(main(['web', '--db', {str(db)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "pip install 'syslogkit[web]'" in done.stderr


def test_web_says_when_there_is_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["web", "--db", str(tmp_path / "none.db"), "--listen", "127.0.0.1:0"]) == 2
    assert "no store at" in capsys.readouterr().err


def test_collect_serves_the_page_and_the_metrics_beside_the_collector(tmp_path: Path) -> None:
    tcp, web, metrics = free_ports(3)
    db = tmp_path / "c.db"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "syslogkit", "collect", "-l", f"tcp://127.0.0.1:{tcp}",
            "--db", str(db), "--web", f"127.0.0.1:{web}", "--metrics", f"127.0.0.1:{metrics}",
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
        assert any(f"http://127.0.0.1:{web}/" in text for text in banner), banner
        assert any(f"http://127.0.0.1:{metrics}/metrics" in text for text in banner), banner
        feed(tcp, [line("beside the collector", app="beside")])
        web_url = f"http://127.0.0.1:{web}/"

        def shown() -> list[str]:
            status, _, body = get(web_url, "/api/messages?app=beside")
            return [r["msg"] for r in json.loads(body)["records"]] if status == 200 else []

        assert wait_for(shown, 10.0, "the record in the page's API") == ["beside the collector"]
        status, _, body = get(f"http://127.0.0.1:{metrics}/", "/metrics")
        received = {
            s.labels.get("listener"): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
            if s.name == "syslogkit_listener_received_total"
        }
        assert status == 200 and received == {f"tcp://127.0.0.1:{tcp}": 1}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_collect_refuses_a_web_ui_beyond_loopback_without_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.db"
    args = ["collect", "-l", "tcp://127.0.0.1:0", "--db", str(db), "--web", "0.0.0.0:0"]
    assert main(args) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err
