"""Real senders into the collector: rsyslog (omfwd over TCP and TLS, omrelp) and logger(1).

rsyslog receives RFC 5424 messages on a TCP input of its own and forwards them to the collector
with its standard RFC 5424 template, which ends in LF (counted inside the octet count over TCP).
The collector's stored fields must equal what was sent into rsyslog. The RELP test kills the
collector (SIGKILL, a subprocess) in the middle of a stream and restarts it: every message must
be in the store afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Need, RsyslogFactory
from support import collector as collector_support
from support.collector import (
    assert_sent_fields,
    collector_tls,
    feed,
    rfc5424,
    wait_for,
    wait_stored,
)
from support.peers import PKI, RsyslogPeer, free_port
from syslogkit.collector import CollectorThread, SQLiteSink
from syslogkit.collector.record import Record

TEXT = "grüße ✓ 日本語"


def stored(db: Path) -> list[Record]:
    """What the store holds so far; [] while it cannot be opened (a collector starting up or
    just killed)."""
    return collector_support.stored(db, opening_may_fail=True)


def forwarder(rsyslog: RsyslogFactory, action: str, modules: str = "") -> tuple[RsyslogPeer, int]:
    """An rsyslogd whose extra TCP input (returned port) feeds `action`."""
    port = free_port()
    extra = (
        f"{modules}\n"
        f'ruleset(name="fwd") {{\n  {action}\n}}\n'
        f'input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="fwd")\n'
    )
    peer = rsyslog(tcp=True, extra_config=extra)

    def accepting() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        return False

    wait_for(accepting, 10, "rsyslog's forwarding input")
    return peer, port


def forward_and_check(
    rsyslog: RsyslogFactory,
    action: str,
    texts: list[str],
    db: Path,
    *,
    transport: str,
    timeout: float,
    modules: str = "",
) -> list[Record]:
    """Feed `texts` (as RFC 5424 messages) to an rsyslogd forwarding them with `action`, wait
    (at most `timeout` s) until as many are stored in `db`, and check that each stored record
    has the fields sent and came over `transport`; the records."""
    peer, port = forwarder(rsyslog, action, modules)
    feed(port, [rfc5424(t) for t in texts])
    records = wait_stored(db, len(texts), timeout, opening_may_fail=True)
    assert len(records) == len(texts), peer.diagnostics()
    for record, text in zip(records, texts, strict=True):
        assert_sent_fields(record, text)
        assert record.transport == transport
    return records


# -- omfwd: TCP, TLS ----------------------------------------------------------------------------


def test_rsyslog_omfwd_octet_counted_tcp(rsyslog: RsyslogFactory, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with CollectorThread(["tcp://127.0.0.1:0"], [SQLiteSink(db)]) as c:
        action = (
            f'action(type="omfwd" target="127.0.0.1" port="{c.port("tcp")}" protocol="tcp"'
            ' TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")'
        )
        texts = [f"{TEXT} #{i}" for i in range(20)]
        forward_and_check(rsyslog, action, texts, db, transport="tcp", timeout=15)
        # rsyslog counted the template's trailing LF in the octet count
        stats = c.stats()["listeners"][0]
        assert stats["received"] == stats["parsed"] == 20


def test_rsyslog_omfwd_tls_with_client_certificate(
    rsyslog: RsyslogFactory, pki: PKI, tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    tls = collector_tls(pki, "required")
    with CollectorThread(["tls://127.0.0.1:0"], [SQLiteSink(db)], tls=tls) as c:
        action = (
            f'action(type="omfwd" target="127.0.0.1" port="{c.port("tls")}" protocol="tcp"'
            ' TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"'
            ' StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/certvalid"'
            f' streamDriver.CAFile="{pki.ca.cert}" streamDriver.CertFile="{pki.client.cert}"'
            f' streamDriver.KeyFile="{pki.client.key}")'
        )
        texts = [f"{TEXT} tls #{i}" for i in range(10)]
        records = forward_and_check(rsyslog, action, texts, db, transport="tls", timeout=15)
        for record in records:
            assert record.tls_subject is not None
            assert "CN=client.syslogkit.test" in record.tls_subject
            assert record.tls_fingerprint == "sha-256:" + pki.client.sha256.split(":", 1)[1]


# -- logger(1) ----------------------------------------------------------------------------------


@pytest.fixture
def collector_udp_tcp(tmp_path: Path) -> Iterator[tuple[CollectorThread, Path]]:
    db = tmp_path / "c.db"
    with CollectorThread(["udp://127.0.0.1:0", "tcp://127.0.0.1:0"], [SQLiteSink(db)]) as c:
        yield c, db


@pytest.mark.parametrize(
    ("transport", "rfc", "framing"),
    [
        ("udp", "rfc5424", ()),
        ("udp", "rfc3164", ()),
        ("tcp", "rfc5424", ("--octet-count",)),
        ("tcp", "rfc3164", ()),
    ],
)
def test_logger(
    need: Need,
    collector_udp_tcp: tuple[CollectorThread, Path],
    transport: str,
    rfc: str,
    framing: tuple[str, ...],
) -> None:
    logger = need.logger()
    c, db = collector_udp_tcp
    text = f"{TEXT} from logger over {transport} {rfc}"
    args = [logger, f"--{rfc}", f"--{transport}", *framing, "-n", "127.0.0.1"]
    args += ["-P", str(c.port(transport)), "-t", "myapp", "-p", "local3.err", "--id=4242"]
    if rfc == "rfc5424":
        args += ["--msgid", "MID9", "--sd-id", "x@32473", "--sd-param", 'k="v \\"q\\""']
    before = time.time()
    subprocess.run([*args, text], check=True, timeout=10)
    [record] = wait_for(lambda: stored(db), 10, "the logger message")
    m = record.message
    assert m is not None and record.error is None, record.error
    assert (m.facility, m.severity) == (19, 3)
    assert m.app_name == "myapp"
    assert m.procid == "4242"
    assert m.msg == text
    assert m.hostname == socket.gethostname().split(".")[0] or m.hostname == socket.gethostname()
    assert m.timestamp is not None and abs(m.timestamp.timestamp() - before) < 120
    assert record.transport == transport
    if rfc == "rfc5424":
        assert m.version == 1 and m.msgid == "MID9"
        sd = {e.id: e.params for e in m.structured_data}
        assert sd["x@32473"] == (("k", 'v "q"'),)
        assert "timeQuality" in sd
    else:
        assert m.version is None


# -- RELP ---------------------------------------------------------------------------------------


def omrelp_action(port: int) -> str:
    return (
        f'action(type="omrelp" target="127.0.0.1" port="{port}"'
        ' template="RSYSLOG_SyslogProtocol23Format"'
        ' action.resumeRetryCount="-1" action.resumeInterval="1"'
        ' queue.type="LinkedList" queue.size="200000" queue.dequeueBatchSize="128")'
    )


def test_rsyslog_omrelp(need: Need, rsyslog: RsyslogFactory, tmp_path: Path) -> None:
    need.rsyslog("omrelp")
    db = tmp_path / "c.db"
    with CollectorThread(["relp://127.0.0.1:0"], [SQLiteSink(db)]) as c:
        action = omrelp_action(c.port("relp"))
        texts = [f"{TEXT} relp #{i}" for i in range(300)]
        modules = 'module(load="omrelp")'
        forward_and_check(rsyslog, action, texts, db, transport="relp", timeout=20, modules=modules)


class CollectorProcess:
    """`python -m syslogkit collect` as a subprocess on a fixed port."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.args = args
        self.cwd = cwd
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self) -> CollectorProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syslogkit", "collect", *self.args],
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("try:"):
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.proc.kill()
        raise AssertionError("collector did not start:\n" + "".join(self.lines))

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def test_rsyslog_omrelp_collector_sigkilled_and_restarted(
    need: Need, rsyslog: RsyslogFactory, tmp_path: Path
) -> None:
    need.rsyslog("omrelp")
    db = tmp_path / "c.db"
    relp_port = free_port()
    args = ["-l", f"relp://127.0.0.1:{relp_port}", "--db", str(db)]
    first = CollectorProcess(args, tmp_path).start()
    second: CollectorProcess | None = None
    try:
        _peer, port = forwarder(rsyslog, omrelp_action(relp_port), 'module(load="omrelp")')
        total = 10_000
        payloads = [rfc5424(f"seq={i:06d}") for i in range(total)]
        feeder = threading.Thread(target=feed, args=(port, payloads))
        feeder.start()
        wait_for(lambda: len(stored(db)) >= 1000, 20, "the stream to be flowing")
        assert first.kill(signal.SIGKILL) == -signal.SIGKILL
        at_kill = len(stored(db))
        assert at_kill < total, "the stream ended before the kill: make it longer"
        time.sleep(0.5)
        second = CollectorProcess(args, tmp_path).start()
        feeder.join(20)

        def complete() -> set[str] | None:
            seen = {
                r.message.msg
                for r in stored(db)
                if r.message is not None and r.message.msg is not None
            }
            return seen if len(seen) >= total else None

        seen = wait_for(complete, 40, f"all {total} messages after the restart")
        assert seen == {f"seq={i:06d}" for i in range(total)}
        duplicates = len(stored(db)) - total
        print(f"stored at kill: {at_kill}, duplicates after restart: {duplicates}")
        assert second.kill(signal.SIGTERM) == 0
    finally:
        first.stop()
        if second is not None:
            second.stop()


def _stored_count(db: Path) -> int:
    from syslogkit.collector import Store

    with contextlib.suppress(Exception):
        store = Store(db, readonly=True)
        try:
            return store.count()
        finally:
            store.close()
    return 0


def _writer_of(pid: int) -> int:
    """The collector's store writer process (its one child)."""
    children = [
        int(child)
        for task in os.listdir(f"/proc/{pid}/task")
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    ]
    assert len(children) == 1, children
    return children[0]


def test_rsyslog_omrelp_loses_nothing_when_the_collectors_writer_is_sigkilled(
    need: Need, rsyslog: RsyslogFactory, tmp_path: Path
) -> None:
    """rsyslog's omrelp (librelp's client) forwards 20,000 messages while the collector's store
    writer is SIGKILLed twice. librelp forgets a message answered 500 (never sent again), so
    the collector never answers 500 for a failed commit: it closes the session unanswered and
    librelp sends every unanswered message again. Every message is stored (some twice)."""
    need.rsyslog("omrelp")
    n, kills_at = 20_000, (4_000, 10_000)
    db = tmp_path / "w.db"
    relp_port = free_port()
    collector = CollectorProcess(["-l", f"relp://127.0.0.1:{relp_port}", "--db", str(db)], tmp_path)
    collector.start()
    try:
        assert collector.proc is not None
        peer, port = forwarder(rsyslog, omrelp_action(relp_port), 'module(load="omrelp")')
        texts = [f"omrelp n={i}" for i in range(n)]
        feeder = threading.Thread(target=feed, args=(port, [rfc5424(t) for t in texts]))
        feeder.start()
        for at in kills_at:
            wait_for(lambda at=at: _stored_count(db) >= at, 30, f"{at} stored")
            os.kill(_writer_of(collector.proc.pid), signal.SIGKILL)
        feeder.join(30)

        def every_one() -> bool:
            return len({r.message.msg for r in stored(db) if r.message is not None}) >= n

        with contextlib.suppress(AssertionError):
            wait_for(every_one, 30, "every message stored")
        kept = {(r.message.msg or "").lstrip("\ufeff") for r in stored(db) if r.message}
        missing = [t for t in texts if t not in kept]
        assert missing == [], f"{len(missing)} of {n} lost: {missing[:5]}\n{peer.diagnostics()}"
    finally:
        collector.stop()
