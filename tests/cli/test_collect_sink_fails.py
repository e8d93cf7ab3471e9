"""`syslogkit collect` when a sink fails (issue 22), its writer process dies (issue 23 item 5)
or it gets SIGHUP (issue 18 item 5): a real process, a real full disk (a tmpfs the test mounts
and grows), real TCP, RELP and UDP senders. Each test states the property it proves; the issue's
200,000 records are fewer here (the disk fills after about 20,000 either way) to keep each test
within about 20 s."""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.collector import wait_for
from support.disk import small_disk
from support.peers import Need
from support.peers.nats import CollectProcess
from syslogkit.codec.relp import Acked, Refused, RelpClient, SessionOpened
from syslogkit.collector import Store

PAD = "x" * 60


def message(i: int) -> bytes:
    return f"<14>1 2026-12-08T01:00:00.000Z web1 app 42 ID7 - seq={i:07d} {PAD}".encode()


def send_tcp(port: int, count: int, *, pace: float = 0.0) -> None:
    """`count` octet-counted messages over one connection, 1,000 per write (`pace` seconds
    between writes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        for start in range(0, count, 1000):
            chunk = [message(i) for i in range(start, min(count, start + 1000))]
            s.sendall(b"".join(b"%d %b" % (len(m), m) for m in chunk))
            if pace:
                time.sleep(pace)


class RelpSender:
    """One RELP session sending `count` messages (window 128), never re-sending: counts what
    was acknowledged and refused."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.acked = 0
        self.refused = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = RelpClient(window=128)
        deadline = time.monotonic() + 60
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(client.open())
            sent = 0
            while self.acked + self.refused < self.count and time.monotonic() < deadline:
                while client.state == "open" and client.can_send and sent < self.count:
                    client.send(message(sent))
                    sent += 1
                out = client.data_to_send()
                if out:
                    s.sendall(out)
                if select.select([s], [], [], 0.5)[0]:
                    data = s.recv(65536)
                    if not data:
                        return
                    for event in client.receive_data(data):
                        if isinstance(event, Acked):
                            self.acked += 1
                        elif isinstance(event, Refused):
                            self.refused += 1
                        elif not isinstance(event, SessionOpened):
                            return
            s.sendall(client.close())


def send_udp(port: int, count: int, rate: int) -> None:
    """`count` datagrams at `rate` per second (paced every 10 ms)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        started = time.monotonic()
        for i in range(count):
            s.sendto(message(i), ("127.0.0.1", port))
            if i % 200 == 199:
                ahead = (i + 1) / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)


def stored(db: Path) -> tuple[int, int]:
    """(rows, distinct raw messages) in the store."""
    with Store(db, readonly=True) as store:
        raws = [r.raw for r in store.query()]
    return len(raws), len(set(raws))


def wait_committed(c: CollectProcess, count: int, timeout: float = 20) -> None:
    """Until the pipeline committed `count` records; fails with the collector's lines."""
    try:
        wait_for(lambda: pipeline(c).get("committed") == count, timeout, f"{count} committed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; pipeline {pipeline(c)}; {c.logs()}") from None


def pipeline(c: CollectProcess) -> dict[str, Any]:
    return c.stats().get("pipeline") or {}


def sink(c: CollectProcess, prefix: str) -> dict[str, Any]:
    for entry in pipeline(c).get("sinks") or ():
        if entry["name"].startswith(prefix):
            return dict(entry)
    return {}


def err(c: CollectProcess) -> str:
    return c.err.read_text(errors="replace")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def unhealthy(url: str, reason: str) -> bool:
    """`/healthz` answers 503 and starts with `reason`."""
    status, text = get(url)
    return status == 503 and text.startswith(reason)


def metrics_url(c: CollectProcess) -> str:
    for line in c.out.read_text().splitlines():
        if line.startswith("metrics on "):
            return line.split()[2]
    raise AssertionError(f"no metrics line: {c.logs()}")


def test_a_full_disk_pauses_tcp_the_jsonl_sink_keeps_up_and_every_record_is_stored_once(
    tmp_path: Path, need: Need
) -> None:
    count = 40_000
    with small_disk(tmp_path / "disk", "10m", need) as disk:
        db = disk.path / "s.db"
        jsonl = tmp_path / "out.jsonl"
        c = CollectProcess(
            tmp_path / "c", "-l", "tcp://127.0.0.1:0", "--db", str(db), "--jsonl", str(jsonl),
            "--high-water", "5000", "--metrics", "127.0.0.1:0",
        ).start()  # fmt: skip
        try:
            sender = threading.Thread(target=send_tcp, args=(c.port("tcp"), count))
            sender.start()
            wait_for(lambda: "stream listeners paused" in err(c), 20, "the pause line")
            assert "sink store " in err(c) and " failed: " in err(c)
            # the store fails; the JSON-lines sink beside it has every batch taken so far
            wait_for(
                lambda: (
                    sink(c, "jsonl")["waiting"] == 0 < sink(c, "store")["waiting"]
                    and sink(c, "jsonl")["committed"] > sink(c, "store")["committed"]
                ),
                5,
                "the JSON-lines sink ahead of the failing store",
            )
            healthz = metrics_url(c).replace("/metrics", "/healthz")
            wait_for(lambda: unhealthy(healthz, f"not ok: sink failing: store {db} ("), 5, "a 503")
            text = get(metrics_url(c))[1]
            assert f'syslogkit_sink_failing{{sink="store {db}"}} 1' in text
            assert "syslogkit_pipeline_paused 1" in text
            received = c.stats()["listeners"][0]["received"]
            assert received < count  # paused: the rest waits in the sender's socket
            time.sleep(0.5)
            disk.grow("64m")
            sender.join(30)
            wait_committed(c, count)
            assert get(metrics_url(c).replace("/metrics", "/healthz"))[0] == 200
        finally:
            assert c.stop() == 0, c.logs()
        lines = err(c)
        assert stored(db) == (count, count), lines
        assert len(set(jsonl.read_bytes().splitlines())) == len(jsonl.read_bytes().splitlines())
        assert len(jsonl.read_bytes().splitlines()) == count
        assert "recovered after" in lines and "stream listeners resumed after" in lines, lines
        assert f"store {db}: committed={count} failures=" in lines


def test_relp_senders_lose_nothing_while_the_disk_is_full(tmp_path: Path, need: Need) -> None:
    count = 30_000
    with small_disk(tmp_path / "disk", "10m", need) as disk:
        db = disk.path / "s.db"
        c = CollectProcess(tmp_path / "c", "-l", "relp://127.0.0.1:0", "--db", str(db)).start()
        try:
            senders = [RelpSender(c.port("relp"), count // 2) for _ in range(2)]
            for s in senders:
                s.thread.start()
            wait_for(lambda: " failed: " in err(c), 20, "the failure line")
            assert sum(s.acked for s in senders) < count  # held: not answered, not refused
            time.sleep(0.5)
            disk.grow("64m")
            for s in senders:
                s.thread.join(40)
            assert [(s.acked, s.refused) for s in senders] == [(count // 2, 0)] * 2
        finally:
            assert c.stop() == 0, c.logs()
        assert stored(db) == (count, count // 2)  # two senders, the same sequence numbers
        assert "recovered after" in err(c)


def test_udp_at_20k_per_second_into_a_full_disk_stored_plus_counted_dropped_is_sent(
    tmp_path: Path, need: Need
) -> None:
    count = 60_000
    with small_disk(tmp_path / "disk", "10m", need) as disk:
        db = disk.path / "s.db"
        c = CollectProcess(
            tmp_path / "c", "-l", "udp://127.0.0.1:0", "--db", str(db), "--high-water", "5000"
        ).start()
        try:
            send_udp(c.port("udp"), count, 20_000)
            wait_for(lambda: " failed: " in err(c), 10, "the failure line")
            disk.grow("64m")
            wait_for(lambda: pipeline(c).get("pending") == 0 and not pipeline(c)["failing"], 20)
        finally:
            assert c.stop() == 0, c.logs()
        listener = c.stats()["listeners"][0]
        dropped = sum(listener["dropped"].values()) + (listener.get("kernel_drops") or 0)
        rows, distinct = stored(db)
        assert rows == distinct == pipeline(c)["committed"]
        assert listener["dropped"].get("sink_failing", 0) > 0, listener
        assert rows + dropped == count, (rows, listener)


def test_sigterm_while_paused_tells_exactly_how_many_records_were_not_stored(
    tmp_path: Path, need: Need
) -> None:
    count = 40_000
    with small_disk(tmp_path / "disk", "10m", need) as disk:
        db = disk.path / "s.db"
        c = CollectProcess(
            tmp_path / "c", "-l", "tcp://127.0.0.1:0", "--db", str(db),
            "--high-water", "5000", "--stop-timeout", "1",
        ).start()  # fmt: skip
        sender = threading.Thread(target=send_tcp, args=(c.port("tcp"), count))
        sender.start()
        try:
            wait_for(lambda: "stream listeners paused" in err(c), 20, "the pause line")
        finally:
            started = time.monotonic()
            assert c.stop() == 0, c.logs()
        took = time.monotonic() - started
        sender.join(10)
        rows, distinct = stored(db)
        assert rows == distinct
        lines = err(c)
        assert f"{count - rows} records received over TCP/TLS/UDP were not stored" in lines, lines
        assert f"stored={rows} " in lines and f"not_stored={count - rows}" in lines, lines
        assert took < 15


def test_a_writer_process_killed_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    count = 100_000
    db = tmp_path / "s.db"
    c = CollectProcess(tmp_path / "c", "-l", "tcp://127.0.0.1:0", "--db", str(db)).start()
    try:
        assert c.proc is not None
        sender = threading.Thread(target=send_tcp, args=(c.port("tcp"), count))
        sender.start()
        wait_for(lambda: pipeline(c).get("committed", 0) > 20_000, 20, "20,000 stored")
        children = Path(f"/proc/{c.proc.pid}/task/{c.proc.pid}/children").read_text().split()
        assert len(children) == 1
        os.kill(int(children[0]), signal.SIGKILL)
        sender.join(30)
        wait_committed(c, count)
    finally:
        assert c.stop() == 0, c.logs()
    assert stored(db) == (count, count)
    assert "restarted it" in err(c) and "writer_restarts=1" in err(c)


def test_sighup_reopens_the_jsonl_file_the_collector_keeps_running_and_loses_nothing(
    tmp_path: Path,
) -> None:
    count = 50_000
    jsonl = tmp_path / "out.jsonl"
    rotated = tmp_path / "out.jsonl.1"
    c = CollectProcess(tmp_path / "c", "-l", "tcp://127.0.0.1:0", "--no-db", "--jsonl", str(jsonl))
    c.start()
    try:
        assert c.proc is not None
        sender = threading.Thread(
            target=send_tcp, args=(c.port("tcp"), count), kwargs={"pace": 0.02}
        )
        sender.start()
        wait_for(lambda: pipeline(c).get("committed", 0) > 10_000, 20, "10,000 written")
        jsonl.rename(rotated)  # as logrotate does, then HUP
        c.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: re-opened jsonl" in err(c), 10, "the SIGHUP line")
        sender.join(30)
        wait_committed(c, count)
        assert c.proc.poll() is None  # still running (before: exit 129)
    finally:
        assert c.stop() == 0, c.logs()
    old, new = rotated.read_bytes().splitlines(), jsonl.read_bytes().splitlines()
    assert old and new
    assert len(old) + len(new) == len(set(old + new)) == count


def test_below_min_free_with_a_retention_size_the_oldest_are_deleted_to_make_room(
    tmp_path: Path, need: Need
) -> None:
    count = 60_000  # about 22 MB stored on a 20 MB disk
    with small_disk(tmp_path / "disk", "20m", need) as disk:
        db = disk.path / "s.db"
        c = CollectProcess(
            tmp_path / "c", "-l", "tcp://127.0.0.1:0", "--db", str(db),
            "--min-free", "8M", "--retention-size", "1G",
        ).start()  # fmt: skip
        try:
            send_tcp(c.port("tcp"), count)
            wait_committed(c, count)
        finally:
            assert c.stop() == 0, c.logs()
        lines = err(c)
        deleted = sink(c, "store")["retention_deleted"]
        rows, distinct = stored(db)
        assert rows == distinct and rows + deleted == count, lines
        assert " failed: " not in lines
        told = [line for line in lines.splitlines() if "oldest messages to make room" in line]
        assert (
            told and sum(int(line.split("deleted the ")[1].split()[0]) for line in told) == deleted
        )
