"""`syslogkit demo`: the README's main command shows records arriving over each transport."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from syslogkit.collector import Store


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syslogkit", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_demo_exits_0_and_shows_records_that_arrived_over_udp_tcp_and_mutual_tls() -> None:
    result = _demo()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for transport in ("udp", "tcp", "tls"):
        arrived = [line for line in lines if f"over {transport}" in line]
        assert len(arrived) == 3, (transport, result.stdout)
        assert any(f'[order@32473 id="1" via="{transport}"]' in line for line in arrived)
    tls_lines = [line for line in lines if line.strip().startswith("tls") and " | " in line]
    assert all("CN=app" in line for line in tls_lines), "the client certificate's subject is shown"
    assert any("[+" in line and "traceback" in line for line in lines)
    assert "every record arrived" in result.stdout
    assert result.stderr == ""


def test_demo_keep_leaves_a_store_that_holds_every_record(tmp_path: Path) -> None:
    result = _demo("--keep", str(tmp_path), "--count", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    with Store(tmp_path / "demo.db", readonly=True) as store:
        assert store.count() == 15
    assert (tmp_path / "pki" / "ca.pem").exists()
    assert f"syslogkit query --db {tmp_path / 'demo.db'}" in result.stdout


def test_demo_without_cryptography_says_how_to_get_it_in_one_line() -> None:
    code = (
        "import sys; sys.modules['cryptography'] = None; "
        "from syslogkit.cli.main import main; sys.exit(main(['demo']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "syslogkit demo: error: this command needs the 'cryptography' package: "
        "pip install 'syslogkit[cli]'"
    )
