"""Failover: the first reachable address carries the records; the first one is re-tried in the
background and used again once it is back."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from support.delivery import (
    Sink,
    first_arrivals,
    numbered,
    refused_port,
    tcp_transport,
    wait_for,
)
from syslogkit.delivery.background import BackgroundDelivery
from syslogkit.delivery.sync import SyncDelivery
from syslogkit.transports.address import Address
from syslogkit.transports.base import TransportError
from syslogkit.transports.failover import FailoverTransport
from syslogkit.transports.schemes import make_transport


def deliver_until_back_on_the_first(
    delivery: BackgroundDelivery | SyncDelivery,
    failover: FailoverTransport,
    make: Callable[[int], bytes],
    start: int,
) -> int:
    """Keep delivering `make(start)`, `make(start + 1)`, ... every 10 ms until the failover is
    back on its first address, for at most 10 s; the next number to deliver."""
    i = start
    deadline = time.monotonic() + 10.0
    while failover.current != 0 and time.monotonic() < deadline:
        delivery.deliver(make(i))
        i += 1
        time.sleep(0.01)
    return i


def test_the_next_address_is_used_when_the_first_cannot_be_reached() -> None:
    with Sink() as secondary:
        failover = FailoverTransport([tcp_transport(refused_port()), tcp_transport(secondary.port)])
        delivery = BackgroundDelivery(failover)
        for i in range(100):
            delivery.deliver(numbered(i))
        assert delivery.flush(5.0)
        assert wait_for(lambda: secondary.count() == 100)
        assert secondary.numbers() == list(range(100))
        assert failover.current == 1
        delivery.close(2.0)


@pytest.mark.parametrize("mode", [BackgroundDelivery, SyncDelivery])
def test_the_first_address_is_retried_in_the_background_and_used_again(
    mode: type[BackgroundDelivery | SyncDelivery],
) -> None:
    primary_port = refused_port()
    with Sink() as secondary:
        failover = FailoverTransport([tcp_transport(primary_port), tcp_transport(secondary.port)])
        delivery = mode(failover)
        for i in range(50):
            delivery.deliver(numbered(i))
        assert delivery.flush(5.0)
        assert failover.current == 1
        with Sink(primary_port) as primary:
            # keep logging; the writer moves back to the first address by itself
            i = deliver_until_back_on_the_first(delivery, failover, numbered, 50)
            assert failover.current == 0
            assert failover.switches == 1
            for j in range(i, i + 50):
                delivery.deliver(numbered(j))
            assert delivery.flush(5.0)
            total = i + 50
            assert wait_for(lambda: primary.count() + secondary.count() >= total)
            both = secondary.numbers() + primary.numbers()
            order, dupes = first_arrivals(both)
            assert sorted(order) == list(range(total))
            assert dupes == 0
            assert primary.numbers()[-1] == total - 1
            assert secondary.numbers() == sorted(n for n in secondary.numbers() if n is not None)
            delivery.close(2.0)


def test_no_address_reachable_is_an_unreachable_error() -> None:
    failover = FailoverTransport([tcp_transport(refused_port()), tcp_transport(refused_port())])
    with pytest.raises(TransportError) as info:
        failover.open()
    assert info.value.reason == "unreachable"
    with pytest.raises(TransportError) as info:
        failover.open()  # both back off now: no attempt is made
    assert info.value.attempted is False


def test_failover_wants_stream_transports_of_one_kind() -> None:
    udp = make_transport(Address("udp", "127.0.0.1", 514), timeout=1.0)
    with pytest.raises(ValueError):
        FailoverTransport([udp])
    with pytest.raises(ValueError):
        FailoverTransport([])


def test_relp_failover_moves_back_after_the_answers_came_in() -> None:
    from support.delivery import number_of, payload
    from support.relp import FakeRelp
    from support.relp import transport as relp_transport

    primary_port = refused_port()
    secondary = FakeRelp()
    try:
        failover = FailoverTransport([relp_transport(primary_port), relp_transport(secondary.port)])
        assert failover.acknowledges
        delivery = BackgroundDelivery(failover)
        for i in range(100):
            delivery.deliver(payload(i))
        assert delivery.flush(5.0)
        assert failover.current == 1
        primary = FakeRelp(port=primary_port)  # the first collector is back
        try:
            i = deliver_until_back_on_the_first(delivery, failover, payload, 100)
            assert failover.current == 0
            for j in range(i, i + 50):
                delivery.deliver(payload(j))
            assert delivery.flush(5.0)
            delivery.close(2.0)
            total = i + 50
            got = [number_of(m) for m in secondary.messages + primary.messages]
            order, dupes = first_arrivals(got)
            assert sorted(order) == list(range(total))
            assert dupes == 0
            stats = delivery.stats.snapshot()
            assert stats["acknowledged"] == total
            assert stats["resent"] == 0
        finally:
            primary.close()
    finally:
        secondary.close()
