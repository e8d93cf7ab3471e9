"""The collector under systemd: the unit, $NOTIFY_SOCKET, socket activation through Debian's
`systemd-socket-activate`, and --user/--group after binding a port under 1024 as root."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.test_collector_cli import Collect, send_tcp, send_udp
from syslogkit.collector.systemd import notify

PY = sys.executable
CONTRIB = Path(__file__).resolve().parents[2] / "contrib"


def need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        message = f"{tool} is not installed (Debian package systemd, installed by .ci/run)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_lines(path: Path, count: int, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    syslogkit = Path(PY).parent / "syslogkit"  # the unit names /usr/bin/syslogkit
    unit = (CONTRIB / "syslogkit.service").read_text().replace("/usr/bin/syslogkit", str(syslogkit))
    assert "/usr/bin/syslogkit" not in unit
    (tmp_path / "syslogkit.service").write_text(unit)
    shutil.copy(CONTRIB / "syslogkit.socket", tmp_path)
    for key in ("Type=notify", "User=syslogkit", "AmbientCapabilities=CAP_NET_BIND_SERVICE"):
        assert f"\n{key}\n" in unit
    assert "ExecStartPre=" + f"{syslogkit} collect --check" in unit
    assert "ExecReload=" + f"{syslogkit} collect --check" in unit

    def verify(*names: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [analyze, "verify", *names],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = verify("./syslogkit.service", "./syslogkit.socket")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (tmp_path / "broken.service").write_text(unit.replace("Type=notify", "Type=notifyy"))
    assert "Failed to parse service type" in verify("./broken.service").stderr  # it can fail


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.settimeout(15)
        yield sock


def test_ready_status_and_stopping_go_to_notify_socket(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    c = Collect(
        tmp_path,
        "-l",
        "tcp://127.0.0.1:0",
        "--no-db",
        "--jsonl",
        "x.jsonl",
        env={"NOTIFY_SOCKET": str(tmp_path / "notify")},
    )
    ready = notify_socket.recv(4096).decode().splitlines()
    assert ready == ["READY=1", f"STATUS=listening on {c.urls[0]}"]
    code, _, _ = c.terminate()
    assert code == 0
    assert notify_socket.recv(4096).decode().splitlines() == ["STOPPING=1", "STATUS=draining"]


def test_a_reload_says_reloading_then_ready(tmp_path: Path, notify_socket: socket.socket) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[[listeners]]\nurl = "udp://127.0.0.1:0"\n[sinks.a]\nkind = "jsonl"\npath = "a.jsonl"\n'
    )
    c = Collect(tmp_path, "--config", str(config), env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert notify_socket.recv(4096).startswith(b"READY=1\n")
    c.proc.send_signal(signal.SIGHUP)
    assert notify_socket.recv(4096) == f"RELOADING=1\nSTATUS=reloading {config}".encode()
    assert notify_socket.recv(4096) == f"READY=1\nSTATUS=listening on {c.urls[0]}".encode()
    code, _, err = c.terminate()
    assert code == 0 and f"reloaded {config}" in err


def test_notify_speaks_to_an_abstract_socket_and_is_quiet_without_one() -> None:
    name = f"syslogkit-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/notify"})


@pytest.mark.parametrize("scheme", ["tcp", "udp"])
def test_socket_activation_through_systemd_socket_activate(tmp_path: Path, scheme: str) -> None:
    """systemd-socket-activate binds the port and execs the collector with LISTEN_FDS: the
    collector must take that socket (binding the port itself would fail: it is taken)."""
    activate = need("systemd-socket-activate")
    port = free_port(socket.SOCK_DGRAM if scheme == "udp" else socket.SOCK_STREAM)
    out = tmp_path / "got.jsonl"
    command = [activate, "-l", f"127.0.0.1:{port}", *(["--datagram"] if scheme == "udp" else [])]
    command += ["-E", "PYTHONUNBUFFERED=1", PY, "-m", "syslogkit", "collect"]
    command += ["-l", f"{scheme}://127.0.0.1:{port}", "--no-db", "--jsonl", str(out)]
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith(f"Listening on 127.0.0.1:{port}")
        message = f"<13>1 - h app - - - activated over {scheme}".encode()
        if scheme == "udp":  # the first datagram starts the collector, and is read by it
            send_udp(port, message)
        else:
            send_tcp(port, message)
        lines = wait_lines(out, 1)
        assert [json.loads(line)["msg"] for line in lines] == [f"activated over {scheme}"]
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert f"listening on {scheme}://127.0.0.1:{port}" in stdout
    assert "no listener for the socket" not in stderr


def _python_for(user: str) -> str:
    """An interpreter `user` may run: this one, or the system's of the same version (this one
    may live under /root)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (PY, f"/usr/bin/{version}"):
        try:
            ok = subprocess.run(
                [candidate, "-c", "import sqlite3"], user=user, capture_output=True, check=False
            )
        except OSError:  # not even executable for that user
            continue
        if ok.returncode == 0:
            return candidate
    pytest.skip(f"no {version} that the user {user} may run")


def test_user_and_group_drop_root_after_binding_a_low_port() -> None:
    if os.geteuid() != 0:
        pytest.skip("starting as root is what this tests (CI runs as root)")
    nobody = pwd.getpwnam("nobody")
    python = _python_for("nobody")
    port = next(p for p in range(700, 1000) if _free_low(p))
    work = Path(tempfile.mkdtemp(prefix="syslogkit-priv-"))
    src = Path(__file__).resolve().parents[2] / "src"
    command = [python, "-m", "syslogkit", "collect", "-l", f"tcp://127.0.0.1:{port}"]
    command += ["-l", f"udp://127.0.0.1:{port}", "--db", str(work / "s.db"), "--user", "nobody"]
    command += ["--no-uvloop"]
    env = dict(os.environ, PYTHONPATH=str(src), PYTHONUNBUFFERED="1")
    try:
        work.chmod(0o777)  # the user writes the store here
        proc = subprocess.Popen(
            command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        out = [proc.stdout.readline() for _ in range(4)]
        assert out[-1].startswith("try:"), (out, proc.stderr.read() if proc.stderr else "")
        pids = [proc.pid, *_children(proc.pid)]
        assert len(pids) == 2  # the collector and the store's writer process
        for pid in pids:
            assert _ids(pid) == (nobody.pw_uid, nobody.pw_gid, "")  # groups dropped too
        send_tcp(port, b"<13>1 - h app - - - low tcp port")
        send_udp(port, b"<13>1 - h app - - - low udp port")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        result = subprocess.run(
            [PY, "-m", "syslogkit", "query", "--db", str(work / "s.db"), "--json"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        got = sorted(json.loads(line)["msg"] for line in result.stdout.splitlines())
        assert got == ["low tcp port", "low udp port"]
        assert (work / "s.db").stat().st_uid == nobody.pw_uid
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_user_without_root_is_refused_unless_it_is_already_that_user(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("needs a user that is not root")
    result = subprocess.run(
        [PY, "-m", "syslogkit", "collect", "-l", "tcp://127.0.0.1:0", "--user", "root"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "need the collector to start as root" in result.stderr


def _free_low(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _ids(pid: int) -> tuple[int, int, str]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].split() for line in status}
    uids, gids = set(fields["Uid"]), set(fields["Gid"])
    assert len(uids) == 1 and len(gids) == 1, (uids, gids)  # real, effective, saved, fs
    return int(uids.pop()), int(gids.pop()), " ".join(fields.get("Groups", []))
