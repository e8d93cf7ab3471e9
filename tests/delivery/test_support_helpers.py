"""The delivery tests' own helpers do what the tests rely on."""

from __future__ import annotations

import socket

from support.delivery import TIMEOUT, Sink, first_arrivals, numbered, wait_for


def test_numbered_frames_round_trip_through_the_sink() -> None:
    with Sink() as sink, socket.create_connection(("127.0.0.1", sink.port), TIMEOUT) as s:
        s.sendall(b"".join(numbered(i) for i in range(3)))
        assert wait_for(lambda: sink.count() == 3)
        assert sink.numbers() == [0, 1, 2]


def test_first_arrivals_counts_duplicates() -> None:
    assert first_arrivals([1, 2, 2, None, 3, 1]) == ([1, 2, 3], 2)
