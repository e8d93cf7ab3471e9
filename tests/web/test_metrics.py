"""The collector's /metrics (read back with prometheus_client's text parser) and /healthz."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.collector import feed, wait_for
from support.web import get
from syslogkit.collector import CollectorThread, SQLiteSink
from syslogkit.collector.metrics import MetricsServer, render


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[CollectorThread, MetricsServer, Path]]:
    db = tmp_path / "m.db"
    with (
        CollectorThread(["tcp://127.0.0.1:0", "udp://127.0.0.1:0"], [SQLiteSink(db)]) as collector,
        MetricsServer("127.0.0.1", 0, collector.stats, store_path=db) as metrics,
    ):
        yield collector, metrics, db


def test_metrics_count_what_each_listener_received_and_the_store_committed(
    running: tuple[CollectorThread, MetricsServer, Path],
) -> None:
    collector, metrics, _db = running
    feed(collector.port("tcp"), [b"<13>1 - h a - - - one", b"<13>1 - h a - - - two", b"junk"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"<13>1 - h a - - - three", ("127.0.0.1", collector.port("udp")))

    def scraped() -> Any:
        status, headers, body = get(metrics.url, "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        found = samples(body.decode())
        return found if found[("syslogkit_pipeline_committed_total", ())] >= 4 else None

    found = wait_for(scraped, 10.0, "4 committed in /metrics")
    tcp, udp_url = collector.url("tcp"), collector.url("udp")
    assert found[("syslogkit_listener_received_total", (("listener", tcp),))] == 3
    assert found[("syslogkit_listener_received_total", (("listener", udp_url),))] == 1
    assert found[("syslogkit_listener_parsed_total", (("listener", tcp),))] == 2
    assert found[("syslogkit_listener_connections_total", (("listener", tcp),))] == 1
    assert found[("syslogkit_pipeline_queued_total", ())] == 4
    assert found[("syslogkit_store_bytes", ())] > 0
    assert found[("syslogkit_up", ())] == 1
    # commit latency, as a summary: one sample per committed batch, each taking some time
    batches = found[("syslogkit_pipeline_batches_total", ())]
    assert batches >= 1
    assert found[("syslogkit_pipeline_commit_seconds_count", ())] == batches
    assert 0 < found[("syslogkit_pipeline_commit_seconds_sum", ())] < 10 * batches


def test_healthz_answers_while_the_collector_does(
    running: tuple[CollectorThread, MetricsServer, Path],
) -> None:
    _, metrics, _ = running
    status, _, body = get(metrics.url, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert get(metrics.url, "/other")[0] == 404


def test_a_collector_that_does_not_answer_is_unhealthy(tmp_path: Path) -> None:
    def stuck() -> dict[str, Any]:
        raise TimeoutError("the event loop is blocked")

    with MetricsServer("127.0.0.1", 0, stuck) as metrics:
        for path in ("/healthz", "/metrics"):
            status, _, body = get(metrics.url, path)
            assert status == 503 and b"the event loop is blocked" in body


def test_label_values_are_escaped_as_the_format_says() -> None:
    url = 'tcp://weird"host\\name\n:514'
    text = render(
        {
            "listeners": [
                {"url": url, "received": 5, "dropped": {'cut:a "b"': 2}, "framing": {"x": 1}}
            ],
            "pipeline": {"committed": 5, "pending": 0},
        },
        store_size=123,
    )
    found = samples(text)
    assert found[("syslogkit_listener_received_total", (("listener", url),))] == 5
    key = ("syslogkit_listener_dropped_total", (("listener", url), ("reason", 'cut:a "b"')))
    assert found[key] == 2
    assert found[("syslogkit_store_bytes", ())] == 123


def test_retention_counts_and_the_store_size_as_du_counts_it(tmp_path: Path) -> None:
    from syslogkit.collector.metrics import store_bytes

    lane = {"name": "store s.db", "committed": 5000, "retention_deleted": 1200}
    lane["retention_deleted_young"] = 200
    text = render({"pipeline": {"sinks": [lane]}}, store_size=4096)
    found = samples(text)
    label = (("sink", "store s.db"),)
    assert found[("syslogkit_sink_retention_deleted_total", label)] == 1200
    assert found[("syslogkit_sink_retention_deleted_young_total", label)] == 200
    folder = tmp_path / "s.db"
    folder.mkdir()
    (folder / "p000000000001.db").write_bytes(b"x" * 10_000)
    (folder / "p000000000001.db-wal").write_bytes(b"x" * 5_000)  # side files count too
    du = sum(f.stat().st_blocks * 512 for f in folder.iterdir())
    assert store_bytes(folder) == du >= 15_000


def test_routes_dropped_and_unrouted_are_counters() -> None:
    text = render(
        {
            "listeners": [],
            "pipeline": {"committed": 5},
            "routes": {"routes": 3, "dropped": 4, "unrouted": 2},
        }
    )
    found = samples(text)
    assert found[("syslogkit_routes_dropped_total", ())] == 4
    assert found[("syslogkit_routes_unrouted_total", ())] == 2


def test_reloads_are_counted_with_the_time_of_the_last_success_and_failure() -> None:
    reload = {"count": 3, "failures": 1, "last_success": 1.5e9, "last_failure": 1.4e9}
    found = samples(render({"listeners": [], "pipeline": {}, "reload": reload}))
    assert found[("syslogkit_reloads_total", ())] == 3
    assert found[("syslogkit_reload_failures_total", ())] == 1
    assert found[("syslogkit_reload_last_success_timestamp_seconds", ())] == 1.5e9
    assert found[("syslogkit_reload_last_failure_timestamp_seconds", ())] == 1.4e9
