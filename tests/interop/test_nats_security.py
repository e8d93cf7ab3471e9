"""TLS, mutual TLS and nkey authentication to a real nats-server, end to end through
`syslogkit collect` (an edge publishing, a store consuming): records stored once, refusals in
one line without a traceback, secrets (nkey seeds) never printed."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.peers import PKI, Need
from support.peers.nats import (
    CollectProcess,
    NatsCluster,
    NatsTLS,
    make_nkey_user,
    missing_nats_server,
    missing_nkeys,
)
from syslogkit.collector import Store, StoreError

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

#: a single JetStream server started with the given TLS and extra config
Server = Callable[..., NatsCluster]


@pytest.fixture
def server(tmp_path: Path, need: Need) -> Iterator[Server]:
    why = missing_nats_server()
    need(why is None, why or "")
    started: list[NatsCluster] = []

    def start(tls: NatsTLS | None = None, extra_config: str = "") -> NatsCluster:
        cluster = NatsCluster(
            tmp_path / f"nats-{len(started)}", 1, extra_config=extra_config, tls=tls
        )
        started.append(cluster)
        return cluster.start()

    yield start
    for cluster in started:
        cluster.stop()


def syslogkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syslogkit", *args], capture_output=True, text=True, timeout=50
    )


def assert_refused_in_one_line(run: subprocess.CompletedProcess[str], reason: str) -> None:
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert reason.lower() in run.stderr.lower(), run.stderr


def send_tcp(port: int, prefix: str, count: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"".join(
                b"%d %b" % (len(m), m)
                for m in (f"<14>1 - h app - - - {prefix} {i:05d}".encode() for i in range(count))
            )
        )


def stored(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with Store(db, readonly=True) as store:
            return [r.message.msg if r.message else None for r in store.query()]
    except (StoreError, sqlite3.Error):  # not created yet
        return []


def stream_messages(cluster: NatsCluster) -> int:
    """Messages the server holds (its monitoring port, plain HTTP)."""
    return int(cluster.nodes[0].jsz().get("messages", 0))


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def edge_and_store(
    tmp_path: Path, url: str, connection: list[str], count: int
) -> tuple[list[str], list[CollectProcess]]:
    """`syslogkit collect` as an edge (TCP in, `--nats url`) and as a store (`-l url` into
    SQLite), both with `connection` options; `count` records sent; what the store holds."""
    db = tmp_path / "store.db"
    store_url = url.replace("tls://", "nats+tls://")
    edge = CollectProcess(
        tmp_path / "edge", "-l", "tcp://127.0.0.1:0", "--nats", url, *connection
    ).start()
    store = CollectProcess(
        tmp_path / "store", "-l", store_url, "--db", str(db), "--nats-ack-wait", "3s", *connection
    ).start()
    try:
        send_tcp(edge.port("tcp"), "secure", count)
        wait_for(lambda: len(stored(db)) >= count, 30)
        time.sleep(1.0)  # anything stored twice would show now
    finally:
        edge.stop()
        store.stop()
    return stored(db), [edge, store]


def stats_text(process: CollectProcess) -> str:
    try:
        return process.stats_file.read_text(errors="replace")
    except FileNotFoundError:  # not written yet
        return ""


def assert_quiet(processes: list[CollectProcess], *secrets: str) -> None:
    for process in processes:
        text = process.logs() + stats_text(process)
        assert "Traceback" not in text, text
        for secret in secrets:
            assert secret not in text


# -- TLS ----------------------------------------------------------------------------------------


def test_records_go_through_tls_from_edge_to_store_exactly_once(
    server: Server, pki: PKI, tmp_path: Path
) -> None:
    nats = server(NatsTLS(pki.server.cert, pki.server.key))
    ca = str(pki.ca.cert)
    init = syslogkit("nats", "init", "-s", nats.url, "--ca", ca)
    assert init.returncode == 0 and init.stderr == "", init.stderr
    rows, processes = edge_and_store(tmp_path, nats.url, ["--nats-ca", ca], 2000)
    assert sorted(rows) == [f"secure {i:05d}" for i in range(2000)]
    assert_quiet(processes)


def test_a_server_certificate_from_another_ca_is_refused_in_one_line(
    server: Server, pki: PKI
) -> None:
    nats = server(NatsTLS(pki.server.cert, pki.server.key))
    wrong = syslogkit("nats", "init", "-s", nats.url, "--ca", str(pki.other_ca.cert))
    assert_refused_in_one_line(wrong, "certificate verify failed")
    no_ca = syslogkit("nats", "init", "-s", nats.url)  # the system CAs do not know it either
    assert_refused_in_one_line(no_ca, "certificate verify failed")


def test_an_edge_and_a_store_with_the_wrong_ca_publish_and_acknowledge_nothing(
    server: Server, pki: PKI, tmp_path: Path
) -> None:
    nats = server(NatsTLS(pki.server.cert, pki.server.key))
    ca, other = str(pki.ca.cert), str(pki.other_ca.cert)
    assert syslogkit("nats", "init", "-s", nats.url, "--ca", ca).returncode == 0
    edge = CollectProcess(
        tmp_path / "edge", "-l", "tcp://127.0.0.1:0", "--nats", nats.url, "--nats-ca", other
    ).start()
    db = tmp_path / "store.db"
    store = CollectProcess(
        tmp_path / "store",
        *("-l", nats.url.replace("tls://", "nats+tls://"), "--db", str(db)),
        *("--nats-ca", other),
    ).start()
    try:
        send_tcp(edge.port("tcp"), "refused", 100)

        def refused(process: CollectProcess) -> bool:
            return "certificate verify failed" in stats_text(process)

        assert wait_for(lambda: refused(edge) and refused(store), 15), edge.logs()
        edge_stats = edge.stats()["forward"][0]
        assert edge_stats["published_records"] == 0 and edge_stats["connected"] is False
        assert stream_messages(nats) == 0
        assert stored(db) == []
    finally:
        edge.stop(5)
        store.stop(5)
    assert_quiet([edge, store])


# -- mutual TLS ---------------------------------------------------------------------------------


def test_a_server_that_verifies_clients_refuses_one_without_a_certificate(
    server: Server, pki: PKI, tmp_path: Path
) -> None:
    nats = server(NatsTLS(pki.server.cert, pki.server.key, ca_file=pki.ca.cert, verify=True))
    ca = str(pki.ca.cert)
    without = syslogkit("nats", "init", "-s", nats.url, "--ca", ca)
    assert_refused_in_one_line(without, "certificate")
    foreign = ("--cert", str(pki.other_client.cert), "--key", str(pki.other_client.key))
    assert_refused_in_one_line(
        syslogkit("nats", "init", "-s", nats.url, "--ca", ca, *foreign), "certificate"
    )
    mine = ["--nats-cert", str(pki.client.cert), "--nats-key", str(pki.client.key)]
    init = syslogkit(
        "nats", "init", "-s", nats.url, "--ca", ca, "--cert", mine[1], "--key", mine[3]
    )
    assert init.returncode == 0, init.stderr
    rows, processes = edge_and_store(tmp_path, nats.url, ["--nats-ca", ca, *mine], 500)
    assert sorted(rows) == [f"secure {i:05d}" for i in range(500)]
    assert_quiet(processes)


# -- nkeys --------------------------------------------------------------------------------------


def nkey_server(server: Server, need: Need, tmp_path: Path) -> tuple[NatsCluster, Path, Path]:
    """A server that knows one nkey user; (server, its seed file, another user's seed file)."""
    why = missing_nkeys()
    need(why is None, why or "")
    user, stranger = tmp_path / "user.nk", tmp_path / "stranger.nk"
    public = make_nkey_user(user)
    make_nkey_user(stranger)
    return (
        server(extra_config=f"authorization {{ users: [ {{ nkey: {public} }} ] }}"),
        user,
        stranger,
    )


def test_an_nkey_user_publishes_and_consumes_and_its_seed_is_never_printed(
    server: Server, need: Need, tmp_path: Path
) -> None:
    nats, user, _ = nkey_server(server, need, tmp_path)
    seed = user.read_text().strip()
    init = syslogkit("nats", "init", "-s", nats.url, "--nkey", str(user))
    assert init.returncode == 0, init.stderr
    assert seed not in init.stdout + init.stderr
    rows, processes = edge_and_store(tmp_path, nats.url, ["--nats-nkey", str(user)], 1000)
    assert sorted(rows) == [f"secure {i:05d}" for i in range(1000)]
    assert_quiet(processes, seed)


def test_an_unknown_nkey_or_none_is_refused_without_printing_a_seed(
    server: Server, need: Need, tmp_path: Path
) -> None:
    nats, user, stranger = nkey_server(server, need, tmp_path)
    wrong = syslogkit("nats", "init", "-s", nats.url, "--nkey", str(stranger))
    assert_refused_in_one_line(wrong, "authorization violation")
    assert_refused_in_one_line(syslogkit("nats", "init", "-s", nats.url), "authorization violation")
    for seed_file in (user, stranger):
        assert seed_file.read_text().strip() not in wrong.stdout + wrong.stderr
    edge = CollectProcess(
        tmp_path / "edge", "-l", "tcp://127.0.0.1:0", "--nats", nats.url,
        "--nats-nkey", str(stranger),
    ).start()  # fmt: skip
    try:
        send_tcp(edge.port("tcp"), "refused", 50)
        assert wait_for(lambda: "Authorization Violation" in stats_text(edge), 15), edge.logs()
        assert edge.stats()["forward"][0]["published_records"] == 0
    finally:
        edge.stop(5)
    assert_quiet([edge], stranger.read_text().strip(), user.read_text().strip())
