"""Background delivery over plain TCP against a real rsyslog killed with SIGKILL mid-stream.

Plain TCP has no acknowledgements: records rsyslog's kernel took but rsyslog never wrote are
gone, and the sender cannot know which. The claim tested is the honest bound: every record
that went missing (counted here by number) was counted by the sender as `maybe_lost`, records
the kernel had not handed over were written again, and logged == delivered + dropped + lost.
"""

from __future__ import annotations

import time

from support.delivery import (
    deliver_killing_the_peer_midway,
    first_arrivals,
    number_of,
    numbered,
    tcp_transport,
)
from support.peers import RsyslogFactory
from syslogkit.delivery.background import BackgroundDelivery


def test_tcp_20000_records_across_sigkill_lost_records_are_within_maybe_lost(
    rsyslog: RsyslogFactory,
) -> None:
    peer = rsyslog(tcp=True, no_loss=True)
    delivery = BackgroundDelivery(tcp_transport(peer.tcp_port), queue_size=50_000)
    n = 20_000
    deliver_killing_the_peer_midway(
        delivery, peer, numbered, n, progress="sent", stalled="the writer sent nothing"
    )
    assert delivery.flush(40.0), delivery.stats.snapshot()
    delivery.close(5.0)
    stats = delivery.stats.snapshot()
    # rsyslog writes what it read; give it a moment to finish the file
    time.sleep(0.5)
    order, dupes = first_arrivals(number_of(r.get("msg", "")) for r in peer.records())
    delivered = len(order)
    lost = n - delivered - stats["dropped"]
    print(
        f"TCP kill: delivered {delivered}, lost {lost}, maybe_lost {stats['maybe_lost']},"
        f" resent {stats['resent']}, duplicates {dupes}"
    )
    assert stats["reconnects"] >= 1
    assert order == sorted(order)  # in order of first arrival
    assert 0 <= lost <= stats["maybe_lost"]
    assert n == delivered + stats["dropped"] + lost
    assert dupes <= stats["resent"]
