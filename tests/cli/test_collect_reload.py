"""SIGHUP reloads `collect --config` (cli/reload.py): under load nothing is lost or doubled; a
broken file leaves the old config running; TLS files are read again."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from syslogkit import SyslogHandler

PY = sys.executable


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    """`collect --config FILE` in a folder; stderr read in a thread (the reload lines)."""

    def __init__(self, cwd: Path, config: Path) -> None:
        self.proc = subprocess.Popen(
            [PY, "-m", "syslogkit", "collect", "--config", str(config)],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = []
        while not (self.out and self.out[-1].startswith("try:")):
            line = self.proc.stdout.readline()
            assert line, self.proc.stderr.read()
            self.out.append(line.rstrip("\n"))
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))

    def reload(self, timeout: float = 15) -> str:
        """SIGHUP, and the line that says what came of it."""
        before = len([x for x in self.err if "reload" in x])
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [x for x in self.err if "reload" in x]
            if len(lines) > before:
                return lines[-1]
            time.sleep(0.01)
        raise AssertionError(f"no reload line: {self.err}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self._reader.join(5)
        return self.proc.returncode


def msgs(path: Path) -> list[str]:
    return [json.loads(x)["msg"] for x in path.read_text().splitlines()] if path.exists() else []


def stored(tmp: Path, db: Path) -> list[str]:
    result = subprocess.run(
        [PY, "-m", "syslogkit", "query", "--db", str(db), "--json", "--limit", "1000000"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=tmp,
    )
    return [json.loads(line)["msg"] for line in result.stdout.splitlines()]


CONFIG = """
[[listeners]]
name = "tcp"
url = "tcp://127.0.0.1:{tcp}"
[[listeners]]
name = "udp"
url = "udp://127.0.0.1:{udp}"
[[listeners]]
name = "relp"
url = "relp://127.0.0.1:{relp}"
[sinks.store]
kind = "store"
path = "{tmp}/all.db"
[sinks.even]
kind = "jsonl"
path = "{tmp}/even.jsonl"
[sinks.odd]
kind = "jsonl"
path = "{tmp}/odd.jsonl"
[[routes]]
sinks = ["store", "{which}"]
[stats]
file = "{tmp}/stats.json"
interval = 0.2
"""


def test_ten_reloads_under_tcp_relp_and_udp_load_lose_and_double_nothing(tmp_path: Path) -> None:
    ports = {
        "tcp": free_port(socket.SOCK_STREAM),
        "udp": free_port(socket.SOCK_DGRAM),
        "relp": free_port(socket.SOCK_STREAM),
    }
    config = tmp_path / "c.toml"

    def write(which: str) -> None:
        config.write_text(CONFIG.format(tmp=tmp_path, which=which, **ports))

    write("even")
    c = Running(tmp_path, config)
    done = threading.Event()
    sent: Counter[str] = Counter()

    def tcp() -> None:
        with socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=10) as s:
            i = 0
            while not done.is_set():
                s.sendall(b"".join(b"<13>1 - h a - - - tcp-%d\n" % (i + k) for k in range(50)))
                i += 50
                time.sleep(0.005)
            sent["tcp"] = i

    def udp() -> None:  # paced: 5,000 datagrams a second
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            i, start = 0, time.monotonic()
            while not done.is_set():
                while i < (time.monotonic() - start) * 5000:
                    s.sendto(b"<13>1 - h a - - - udp-%d" % i, ("127.0.0.1", ports["udp"]))
                    i += 1
                time.sleep(0.002)
            sent["udp"] = i

    def relp() -> None:
        handler = SyslogHandler(f"relp://127.0.0.1:{ports['relp']}")
        i = 0
        while not done.is_set():
            for _ in range(50):
                handler.emit(logging.makeLogRecord({"msg": f"relp-{i}", "levelno": 20}))
                i += 1
            time.sleep(0.005)
        handler.close(timeout=20)
        assert handler.stats["dropped"] == 0, handler.stats
        sent["relp"] = i

    threads = [threading.Thread(target=f) for f in (tcp, udp, relp)]
    for t in threads:
        t.start()
    lines = []
    try:
        for n in range(10):
            time.sleep(0.15)
            write("odd" if n % 2 == 0 else "even")
            lines.append(c.reload())
        time.sleep(0.2)
    finally:
        done.set()
        for t in threads:
            t.join(30)
    time.sleep(0.5)  # the last datagrams
    assert c.stop() == 0, c.err
    assert all(line.startswith("syslogkit collect: reloaded ") for line in lines), lines
    assert "3 listeners (0 new, 0 removed), 3 sinks (3 kept)" in lines[-1], lines[-1]
    expected = {f"{kind}-{i}" for kind, count in sent.items() for i in range(count)}
    assert sent["tcp"] > 1000 and sent["udp"] > 1000 and sent["relp"] > 1000, sent
    store = Counter(stored(tmp_path, tmp_path / "all.db"))
    assert max(store.values()) == 1  # nothing twice
    assert set(store) == expected, (len(expected - set(store)), sorted(expected - set(store))[:5])
    even, odd = Counter(msgs(tmp_path / "even.jsonl")), Counter(msgs(tmp_path / "odd.jsonl"))
    assert even and odd
    assert not set(even) & set(odd)  # each record in the jsonl its route named, once
    assert max(even.values()) == max(odd.values()) == 1
    assert set(even) | set(odd) == expected
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["reload"]["count"] == 10 and stats["reload"]["failures"] == 0


def test_a_broken_file_on_hup_keeps_the_old_config_serving(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM)
    config = tmp_path / "c.toml"
    good = f'[[listeners]]\nurl = "tcp://127.0.0.1:{port}"\n'
    good += '[sinks.a]\nkind = "jsonl"\npath = "a.jsonl"\n'
    config.write_text(good)
    c = Running(tmp_path, config)
    config.write_text(good + '[[routes]]\nsinks = ["nowhere"]\n')
    line = c.reload()
    assert line == (
        f"syslogkit collect: reload: {config}:7: routes[1].sinks: no sink named 'nowhere'"
        " (sinks: a); still running the previous config"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"<13>1 - h a - - - still served\n")
    time.sleep(0.3)
    assert c.stop() == 0
    assert msgs(tmp_path / "a.jsonl") == ["still served"]


def test_a_reload_reads_the_tls_files_again(tmp_path: Path, pki: Any) -> None:
    """A new client sees the new certificate; a session opened before goes on sending."""
    port = free_port(socket.SOCK_STREAM)
    cert, key = tmp_path / "server.pem", tmp_path / "server-key.pem"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[listeners]]\nurl = "tls://127.0.0.1:{port}"\n'
        f'[tls]\ncert = "{cert}"\nkey = "{key}"\n'
        '[sinks.a]\nkind = "jsonl"\npath = "a.jsonl"\n'
    )
    c = Running(tmp_path, config)

    def connect() -> ssl.SSLSocket:
        context = ssl.create_default_context(cafile=str(pki.ca.cert))
        context.load_verify_locations(cafile=str(pki.other_ca.cert))
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        return context.wrap_socket(raw, server_hostname="127.0.0.1")

    def fingerprint(sock: ssl.SSLSocket) -> bytes:
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        return der

    old_session = connect()
    old_session.sendall(b"<13>1 - h a - - - before\n")
    first = fingerprint(old_session)
    cert.write_bytes(pki.other_server.cert.read_bytes())  # the rotated certificate
    key.write_bytes(pki.other_server.key.read_bytes())
    assert "TLS files read again" in c.reload()
    with connect() as new_session:
        assert fingerprint(new_session) != first
        assert fingerprint(new_session) == ssl.PEM_cert_to_DER_cert(
            pki.other_server.cert.read_text()
        )
        new_session.sendall(b"<13>1 - h a - - - new session\n")
    old_session.sendall(b"<13>1 - h a - - - old session goes on\n")
    old_session.close()
    time.sleep(0.3)
    assert c.stop() == 0
    assert sorted(msgs(tmp_path / "a.jsonl")) == ["before", "new session", "old session goes on"]


@pytest.fixture(autouse=True)
def _no_stray_handlers() -> None:
    logging.raiseExceptions = True


def test_a_reload_opens_new_listeners_and_closes_removed_ones(tmp_path: Path) -> None:
    old, new = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    config = tmp_path / "c.toml"
    sinks = '[sinks.a]\nkind = "jsonl"\npath = "a.jsonl"\n'
    config.write_text(f'[[listeners]]\nurl = "tcp://127.0.0.1:{old}"\n' + sinks)
    c = Running(tmp_path, config)
    kept = socket.create_connection(("127.0.0.1", old), timeout=5)
    kept.sendall(b"<13>1 - h a - - - before\n")
    config.write_text(f'[[listeners]]\nurl = "tcp://127.0.0.1:{new}"\n' + sinks)
    line = c.reload()
    assert "1 listeners (1 new, 1 removed), 1 sinks (1 kept)" in line, line
    with socket.create_connection(("127.0.0.1", new), timeout=5) as s:
        s.sendall(b"<13>1 - h a - - - on the new port\n")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", old), timeout=5)
    kept.close()
    time.sleep(0.3)
    assert c.stop() == 0
    assert msgs(tmp_path / "a.jsonl") == ["before", "on the new port"]


def test_sighup_after_logrotate_opens_the_files_again(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM)
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[listeners]]\nurl = "tcp://127.0.0.1:{port}"\n'
        f'[sinks.hosts]\nkind = "file"\npath = "{tmp_path}/logs/{{host}}.log"\n'
    )
    (tmp_path / "logs").mkdir()
    c = Running(tmp_path, config)
    log = tmp_path / "logs" / "web-1.log"

    def send(text: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"<13>1 - web-1 a - - - " + text + b"\n")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and text not in b"".join(
            p.read_bytes() for p in (tmp_path / "logs").iterdir()
        ):
            time.sleep(0.02)

    send(b"before rotation")
    log.rename(tmp_path / "logs" / "web-1.log.1")
    assert "reloaded" in c.reload()
    send(b"after rotation")
    assert c.stop() == 0
    assert (tmp_path / "logs" / "web-1.log.1").read_text().endswith("before rotation\n")
    assert log.read_text().endswith("after rotation\n")


def test_sighup_without_a_config_is_not_fatal(tmp_path: Path) -> None:
    from cli.test_collector_cli import Collect

    c = Collect(tmp_path, "-l", "udp://127.0.0.1:0", "--no-db", "--jsonl", "a.jsonl")
    c.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    code, _, err = c.terminate()
    assert code == 0
    assert "SIGHUP: re-opened jsonl a.jsonl; still running" in err


def test_collect_reload_pidfile_signals_the_collector(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'pid_file = "{tmp_path / "collect.pid"}"\n'
        '[[listeners]]\nurl = "udp://127.0.0.1:0"\n[sinks.a]\nkind = "jsonl"\npath = "a.jsonl"\n'
    )
    c = Running(tmp_path, config)
    pid_file = tmp_path / "collect.pid"
    assert pid_file.read_text() == f"{c.proc.pid}\n"
    result = subprocess.run(
        [PY, "-m", "syslogkit", "collect", "--reload", str(pid_file)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("reloaded" in x for x in c.err):
        time.sleep(0.02)
    assert any(x.startswith(f"syslogkit collect: reloaded {config}") for x in c.err), c.err
    assert c.stop() == 0
    assert not pid_file.exists()
    result = subprocess.run(
        [PY, "-m", "syslogkit", "collect", "--reload", str(pid_file)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2 and "no process id in" in result.stderr


def test_a_kept_listener_takes_the_new_zone_and_limits(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM)
    config = tmp_path / "c.toml"
    body = f'[[listeners]]\nurl = "tcp://127.0.0.1:{port}"\n'
    body += '[sinks.a]\nkind = "jsonl"\npath = "a.jsonl"\n'

    def send(text: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"<13>Jan  1 10:00:00 h a: " + text + b"\n")  # BSD: no zone

    config.write_text('timezone = "UTC"\n[limits]\nmax_frame = 4096\n' + body)
    c = Running(tmp_path, config)
    send(b"in UTC " + b"x" * 100)
    time.sleep(0.3)
    config.write_text('timezone = "+05:00"\n[limits]\nmax_frame = 64\n' + body)
    assert "1 listeners (0 new, 0 removed)" in c.reload()
    send(b"in +05:00 " + b"x" * 100)
    time.sleep(0.3)
    assert c.stop() == 0
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["timestamp"][-15:] for r in rows] == ["T10:00:00+00:00", "T10:00:00+05:00"]
    assert [len(r["raw"]) for r in rows] == [132, 64]  # cut at the new max_frame
