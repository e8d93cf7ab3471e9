"""The web's histogram and facets: read from the store's per-minute rollups or counted from the
messages, they equal the exact counts, also after retention deleted messages, on ranges that
start and end inside a minute, and on a store whose rollups are not kept."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from syslogkit.codec.message import Facility, Severity, SyslogMessage
from syslogkit.collector import Filters, Record, Store
from syslogkit.collector.store import partition_files
from syslogkit.web.source import NO_SEVERITY, StoreReader

NOW = time.time()


def record(i: int, when: float) -> Record:
    if i % 13 == 0:  # unparsed: no host, app or severity
        return Record(b"\x00junk " + str(i).encode(), when, "udp", "p", "udp://x:1", None, "bad")
    message = SyslogMessage(
        facility=Facility.LOCAL0,
        severity=Severity(i % 8),
        version=1,
        timestamp=datetime.fromtimestamp(when, timezone.utc),
        hostname=f"h{i % 5}",
        app_name=f"a{i % 3}",
        procid=None,
        msgid=None,
        structured_data=(),
        msg=f"word{i % 4} n{i}",
    )
    return Record(b"<13>1 -", when, "tcp", "p", "tcp://x:1", message)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store with rollups (retention has deleted its oldest part), and a copy as a writer of
    schema 2 would leave it (its version in meta: the rollups are not trusted)."""
    folder = tmp_path_factory.mktemp("source")
    path = folder / "s.db"
    store = Store(path, max_age=3 * 3600)
    records = []
    for i in range(3000):  # four hours, some on a minute's boundary, batches across minutes
        when = NOW - 4 * 3600 + i * 4.8
        records.append(record(i, (when // 60) * 60 if i % 9 == 0 else when))
    for start in range(0, len(records), 250):
        store.insert(records[start : start + 250])
        store.commit()
        if start % 500 == 0:
            store.seal()  # partitions of 250 and 500 messages: counts add up across files
    store.retain(NOW)
    assert store.deleted > 0 and len(partition_files(path)) > 2
    store.close()
    old = folder / "old.db"
    shutil.copytree(path, old)
    for part in partition_files(old):
        db = sqlite3.connect(part)
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
        db.commit()
        db.close()
    return path, old


def matching(path: Path, filters: Filters) -> list[Record]:
    with Store(path, readonly=True) as store:
        return store.query(filters)


def expected_histogram(
    records: list[Record], start: float, step: float, buckets: int
) -> dict[int, list[int]]:
    counts: dict[int, list[int]] = {}
    for r in records:
        when = r.message.timestamp.timestamp() if r.message and r.message.timestamp else None
        bucket = int(((when if when is not None else r.received_at) - start) // step)
        if 0 <= bucket < buckets:
            severity = r.message.severity if r.message else None
            key = NO_SEVERITY if severity is None else int(severity)
            counts.setdefault(key, [0] * buckets)[bucket] += 1
    return counts


def expected_facets(records: list[Record], limit: int) -> dict[str, list[tuple[str, int]]]:
    hosts = Counter(r.message.hostname for r in records if r.message and r.message.hostname)
    apps = Counter(r.message.app_name for r in records if r.message and r.message.app_name)

    def top(c: Counter[str]) -> list[tuple[str, int]]:
        return sorted(c.items(), key=lambda pair: (-pair[1], pair[0]))[:limit]

    return {"hosts": top(hosts), "apps": top(apps)}


RANGES = [
    pytest.param(NOW - 86400, None, id="last-24h-open"),
    pytest.param(NOW - 2 * 3600 + 17.3, NOW - 600.5, id="inside-minutes-both-ends"),
    pytest.param((NOW // 60) * 60 - 3600, (NOW // 60) * 60 - 1800, id="whole-minutes"),
    pytest.param(NOW - 100.25, NOW - 80.5, id="within-two-minutes"),
    pytest.param(None, None, id="all"),
]


@pytest.mark.parametrize(("since", "until"), RANGES)
@pytest.mark.parametrize("which", ["rollups", "schema-2-exact"])
def test_histogram_and_facets_equal_the_exact_counts(
    stores: tuple[Path, Path], which: str, since: float | None, until: float | None
) -> None:
    path = stores[0] if which == "rollups" else stores[1]
    filters = Filters(since=since, until=until)
    records = matching(path, filters)
    assert records
    reader = StoreReader(path)
    try:
        for step in (60.0, 300.0, 900.0, 30.0):
            low = since if since is not None else NOW - 5 * 3600
            start = low // step * step
            buckets = int(-(-((until or NOW + 60) - start) // step))
            got = reader.histogram(filters, start=start, step=step, buckets=buckets)
            assert got.counts == expected_histogram(records, start, step, buckets), step
        assert reader.facets(filters, limit=3) == expected_facets(records, 3)
    finally:
        reader.close()


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param(Filters(since=NOW - 86400, search="word1"), id="search"),
        pytest.param(Filters(since=NOW - 7000.5, search="word2 OR word3"), id="search-or"),
        pytest.param(Filters(since=NOW - 86400, hosts=["h2"], severity=3), id="host-severity"),
    ],
)
def test_filtered_histogram_and_facets_equal_the_exact_counts(
    stores: tuple[Path, Path], filters: Filters
) -> None:
    records = matching(stores[0], filters)
    assert records
    reader = StoreReader(stores[0])
    try:
        start = (NOW - 86400) // 900 * 900
        buckets = int(-(-(NOW + 60 - start) // 900))
        got = reader.histogram(filters, start=start, step=900.0, buckets=buckets)
        assert got.counts == expected_histogram(records, start, 900.0, buckets)
        assert got.total == len(records)
        assert reader.facets(filters, limit=10) == expected_facets(records, 10)
    finally:
        reader.close()


def test_a_store_opened_again_for_writing_counts_what_it_holds(
    stores: tuple[Path, Path], tmp_path: Path
) -> None:
    path = tmp_path / "again.db"
    shutil.copytree(stores[1], path)  # schema 2 in meta: the hot file rebuilt when written
    Store(path).close()
    filters = Filters(since=NOW - 86400)
    reader = StoreReader(path)
    try:
        assert reader.facets(filters, limit=10) == expected_facets(matching(path, filters), 10)
    finally:
        reader.close()


def test_pages_and_the_live_tail_walk_every_partition(stores: tuple[Path, Path]) -> None:
    path = stores[0]
    every = [r.id for r in matching(path, Filters())]
    reader = StoreReader(path)
    try:
        pages: list[int | None] = []
        before = None
        while page := reader.page(Filters(), before=before, limit=70):  # pages across files
            pages += [r.id for r in page]
            before = page[-1].id
        assert pages == every[::-1]
        assert reader.last_id() == every[-1]
        tail = reader.after(Filters(), every[10], up_to=every[500], limit=1000)
        assert [r.id for r in tail] == every[11:501]
        detail = reader.detail(every[300])
        assert detail is not None and detail.id == every[300]
        assert reader.time_span(Filters()) is not None
    finally:
        reader.close()


def deleted_files_held() -> list[str]:
    """The files this process holds open that were deleted (Linux: /proc/self/fd)."""
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.endswith("(deleted)"):
            held.append(target)
    return held


def test_a_reader_lets_go_of_the_files_so_that_deleted_ones_free_their_space(
    tmp_path: Path,
) -> None:
    path = tmp_path / "let-go.db"
    writer = Store(path)
    for chunk in range(4):
        writer.insert([record(chunk * 100 + i, NOW - 100 + i) for i in range(100)])
        writer.seal()
    reader = StoreReader(path)
    try:
        assert len(reader.page(Filters(), before=None, limit=1000)) == 400
        reader.facets(Filters())
        assert writer.make_room(10**12) == 400  # every sealed partition deleted
        assert [f for f in deleted_files_held() if "let-go.db" in f] == []
        assert reader.page(Filters(), before=None, limit=10) == []
    finally:
        reader.close()
        writer.close()
