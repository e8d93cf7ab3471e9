"""SyslogHandler with background delivery (skipped until the handler offers the options)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from support.delivery import Sink, first_arrivals, number_of, refused_port, wait_for
from support.peers import RsyslogFactory
from syslogkit.sender.handler import SyslogHandler


def background_handler(address: str, **options: Any) -> SyslogHandler:
    """The handler with background delivery, configured by its own keywords."""
    return SyslogHandler(address, delivery="background", **options)


def logger_for(handler: SyslogHandler, name: str) -> logging.Logger:
    logger = logging.getLogger(f"test.background.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_handler_background_over_tcp_in_order() -> None:
    with Sink() as sink:
        handler = background_handler(f"tcp://127.0.0.1:{sink.port}", queue_size=5000)
        log = logger_for(handler, "tcp")
        for i in range(1000):
            log.info("record n=%d", i)
        handler.flush(10.0)
        assert wait_for(lambda: sink.count() == 1000)
        assert sink.numbers() == list(range(1000))
        assert handler.stats["sent"] == handler.stats["queued"] == 1000
        handler.close(2.0)


def test_handler_log_calls_never_wait_for_an_unreachable_collector(tmp_path: Path) -> None:
    handler = background_handler(
        f"tcp://127.0.0.1:{refused_port()}", queue_size=100, spool_dir=str(tmp_path / "spool")
    )
    log = logger_for(handler, "down")
    start = time.monotonic()
    for i in range(2000):
        log.warning("record n=%d", i)
    assert time.monotonic() - start < 30.0  # a bound, not a speed claim
    handler.close(5.0)
    stats = handler.stats
    assert stats["spooled"] + stats["dropped"] == 2000
    assert list((tmp_path / "spool").glob("*.seg"))


def test_handler_relp_to_rsyslog(rsyslog: RsyslogFactory) -> None:
    peer = rsyslog(relp=True, no_loss=True)
    handler = background_handler(f"relp://127.0.0.1:{peer.relp_port}", app_name="bgrelp")
    log = logger_for(handler, "relp")
    for i in range(500):
        log.warning("record n=%d", i)
    handler.flush(10.0)
    handler.close(5.0)
    records = peer.messages(500)
    order, dupes = first_arrivals(number_of(r["msg"]) for r in records)
    assert order == list(range(500)) and dupes == 0
    assert records[0]["app-name"] == "bgrelp"
    assert records[0]["msg"] == "record n=0"  # the bare message: RELP frames it itself
    assert handler.stats["acknowledged"] == 500
