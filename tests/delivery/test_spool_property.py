"""Property: whatever the interleaving of appends, reads, in-order commits and rewinds, and
however segments rotate, every record is delivered (committed) exactly once, in order; and a
second process adopting the leftovers finds exactly the uncommitted records."""

from __future__ import annotations

import os
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from syslogkit.delivery.spool import Spool, Ticket

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 30), st.integers(0, 300)),
        st.tuples(st.just("read"), st.integers(1, 4000), st.just(0)),
        st.tuples(st.just("commit"), st.integers(1, 40), st.just(0)),
        st.tuples(st.just("rewind"), st.just(0), st.just(0)),
    ),
    max_size=60,
)


def _records(start: int, count: int, pad: int) -> list[bytes]:
    return [b"%d:" % i + b"x" * ((i * 7 + pad) % 300) for i in range(start, start + count)]


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_every_record_is_committed_once_and_in_order(ops: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        spool = Spool(directory, max_bytes=1 << 24, segment_bytes=4096)
        appended: list[bytes] = []
        committed: list[bytes] = []
        in_flight: list[tuple[bytes, Ticket]] = []
        for op, a, b in ops:
            if op == "append":
                batch = _records(len(appended), a, b)
                assert spool.append(batch) == a
                appended.extend(batch)
            elif op == "read":
                in_flight.extend((payload, ticket) for payload, ticket, _ in spool.read(a))
            elif op == "commit":
                done, in_flight = in_flight[:a], in_flight[a:]
                spool.commit_many([ticket for _, ticket in done])
                committed.extend(payload for payload, _ in done)
            else:
                spool.rewind()
                in_flight = []
        # the next process takes over what is left
        assert spool.pending_records() == len(appended) - len(committed)
        spool.close()  # undelivered segments stay for the next process
        heir = Spool(directory)
        assert heir.adopt() == len(appended) - len(committed)
        while True:
            items = heir.read(10_000)
            if not items:
                break
            heir.commit_many([ticket for _, ticket, _ in items])
            committed.extend(payload for payload, _, _ in items)
        heir.close()
        assert committed == appended
        assert os.listdir(directory) == []
