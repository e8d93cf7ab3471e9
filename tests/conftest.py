"""Shared fixtures: real peers (`rsyslog`, `pki`), the skip/fail policy (`need`), and a
collector in a thread that keeps what arrives (`capture`).

Policy (peers.Need): a test whose real peer is not installed is skipped with the reason, but
fails under CI=true. The `rsyslog` fixture applies it by itself for the modules a peer loads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.collector import EVENT_LOOPS, Capture
from support.peers import (
    PKI,
    TLS,
    Need,
    RsyslogFactory,
    RsyslogPeer,
    SyslogNgPeer,
    SyslogNgTLS,
    make_pki,
)
from syslogkit.collector import CollectorThread


@pytest.fixture(params=sorted(EVENT_LOOPS))
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    """The collector's event loop, each in turn: asyncio's, and uvloop's."""
    return EVENT_LOOPS[request.param]


@pytest.fixture
def need() -> Need:
    """`need(ok, reason)`, `need.rsyslog(*modules)`, `need.syslog_ng()`, `need.logger()`."""
    return Need()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """Main CA with server and client certificates, and an unrelated "other" CA with its own."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def rsyslog(request: pytest.FixtureRequest, tmp_path: Path, need: Need) -> Iterator[RsyslogFactory]:
    """Start real rsyslogd peers: `peer = rsyslog(udp=True, tcp=True, tls=True, relp=True)`.

    Takes RsyslogPeer's keyword arguments; `tls=True`, or a TLS() without files, uses the `pki`
    fixture's CA and server certificate. Skips (fails under CI) when a module is missing. Every
    peer is stopped at teardown and its diagnostics printed (pytest shows them on failure).
    """
    started: list[RsyslogPeer] = []

    def start(**options: Any) -> RsyslogPeer:
        tls = TLS() if options.get("tls") is True else options.get("tls")
        if isinstance(tls, TLS) and None in (tls.ca_file, tls.cert_file, tls.key_file):
            files: PKI = request.getfixturevalue("pki")
            tls = tls.with_defaults(files.ca.cert, files.server.cert, files.server.key)
        options["tls"] = tls
        peer = RsyslogPeer(tmp_path / f"rsyslog-{len(started)}", **options)
        need.rsyslog(*peer.modules)
        started.append(peer)
        return peer.start()

    yield start
    for peer in reversed(started):
        peer.stop()
        print(f"=== rsyslog peer {peer.directory.name} ===\n{peer.diagnostics()}")


#: `syslog_ng(udp=True, tcp=True, tls=True, extra_config=...)`: a started SyslogNgPeer
SyslogNgFactory = Callable[..., SyslogNgPeer]


@pytest.fixture
def syslog_ng(tmp_path: Path, need: Need, pki: PKI) -> Iterator[SyslogNgFactory]:
    """Start real syslog-ng peers (`tls=True`: the `pki` server certificate, client
    certificates chained to its CA). Skips (fails under CI) without syslog-ng. Every peer is
    stopped at teardown and its diagnostics printed (pytest shows them on failure)."""
    need.syslog_ng()
    started: list[SyslogNgPeer] = []

    def start(*, tls: bool = False, **options: Any) -> SyslogNgPeer:
        spec = SyslogNgTLS(pki.ca.cert, pki.server.cert, pki.server.key) if tls else None
        peer = SyslogNgPeer(tmp_path / f"syslog-ng-{len(started)}", tls=spec, **options)
        started.append(peer)
        return peer.start()

    yield start
    for peer in reversed(started):
        peer.stop()
        print(f"=== syslog-ng peer {peer.directory.name} ===\n{peer.diagnostics()}")


@pytest.fixture
def capture() -> Iterator[tuple[CollectorThread, Capture]]:
    """A collector in a thread on loopback UDP and TCP (free ports) keeping what arrives."""
    sink = Capture()
    with CollectorThread(["udp://127.0.0.1:0", "tcp://127.0.0.1:0"], [sink]) as collector:
        yield collector, sink


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start an rsyslog or syslog-ng peer carry the `interop` marker."""
    for item in items:
        if {"rsyslog", "syslog_ng"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.interop)
