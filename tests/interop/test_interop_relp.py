"""RELP against a real rsyslog (imrelp): at-least-once across SIGKILL, window, plain sessions.

The peer's ruleset is `queue.type="Direct"` with omfile flushing per transaction
(`no_loss=True`), so rsyslog acknowledges a message only once it is written: anything missing
would be a loss of ours, not of rsyslog's queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from support.delivery import (
    deliver_killing_the_peer_midway,
    first_arrivals,
    number_of,
    payload,
)
from support.peers import PKI, RELP, RsyslogFactory
from syslogkit.delivery.background import BackgroundDelivery
from syslogkit.transports.address import Address
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.relp import RelpTLSTransport, RelpTransport
from syslogkit.transports.tls import TLSConfig

TIMEOUT = 5.0


def relp(port: int, window: int = 128) -> RelpTransport:
    return RelpTransport(
        Address("relp", "127.0.0.1", port),
        timeout=TIMEOUT,
        backoff=Backoff(0.05, 0.5),
        window=window,
    )


def test_relp_sync_write_is_acknowledged_by_rsyslog(rsyslog: RsyslogFactory) -> None:
    peer = rsyslog(relp=True, no_loss=True)
    transport = relp(peer.relp_port)
    transport.open()
    assert dict(transport.server_offers)["relp_version"] == "0"
    transport.write(payload(1))  # returns once rsyslog answered 200
    [record] = peer.messages(1)
    assert record["inputname"] == "imrelp"
    assert number_of(record["msg"]) == 1
    transport.close(TIMEOUT)
    assert transport.sock is None


def test_relp_20000_records_survive_sigkill_and_restart_of_imrelp(
    rsyslog: RsyslogFactory,
) -> None:
    """Every record arrives, in order of first arrival; duplicates are counted as re-sends."""
    peer = rsyslog(relp=True, no_loss=True)
    delivery = BackgroundDelivery(relp(peer.relp_port), queue_size=50_000)
    n = 20_000
    deliver_killing_the_peer_midway(
        delivery,
        peer,
        payload,
        n,
        progress="acknowledged",
        stalled="no acknowledgements from imrelp",
    )
    assert delivery.flush(40.0), delivery.stats.snapshot()
    delivery.close(5.0)
    stats = delivery.stats.snapshot()
    records = peer.records()
    order, dupes = first_arrivals(number_of(r.get("msg", "")) for r in records)
    assert len(order) == n, f"missing {sorted(set(range(n)) - set(order))[:20]}"
    assert order == list(range(n))
    assert stats["acknowledged"] >= n
    assert stats["reconnects"] >= 1
    assert stats["dropped"] == 0
    assert stats["maybe_lost"] == 0
    assert dupes <= stats["resent"]
    print(f"RELP kill: resent {stats['resent']}, duplicates seen {dupes}")


def test_relp_window_bounds_what_is_in_flight(rsyslog: RsyslogFactory) -> None:
    peer = rsyslog(relp=True, no_loss=True)
    transport = relp(peer.relp_port, window=4)
    delivery = BackgroundDelivery(transport)
    seen = []
    original = transport.send_messages

    def watch(messages: Sequence[bytes]) -> list[int]:
        txnrs = original(messages)  # the writer keeps the TXNRs: pass them back
        seen.append(transport.in_flight)  # unanswered on the session, these included
        return txnrs

    transport.send_messages = watch  # type: ignore[method-assign]
    for i in range(200):
        delivery.deliver(payload(i))
    assert delivery.flush(20.0)
    delivery.close(5.0)
    assert max(seen) <= 4
    order, dupes = first_arrivals(number_of(r.get("msg", "")) for r in peer.records())
    assert order == list(range(200))
    assert dupes == 0
    stats = delivery.stats.snapshot()
    assert stats["acknowledged"] == 200 and stats["errors"] == 0, stats


def test_relp_over_tls_with_client_certificate_to_imrelp(rsyslog: RsyslogFactory, pki: PKI) -> None:
    """relp+tls: imrelp's own TLS (librelp), client certificate required and checked."""
    spec = RELP(
        params={
            "tls": "on",
            "tls.caCert": str(pki.ca.cert),
            "tls.myCert": str(pki.server.cert),
            "tls.myPrivKey": str(pki.server.key),
            "tls.authMode": "certvalid",
        }
    )
    peer = rsyslog(relp=spec, no_loss=True)
    tls = TLSConfig.create(
        "127.0.0.1",
        ca_file=str(pki.ca.cert),
        cert_file=str(pki.client.cert),
        key_file=str(pki.client.key),
    )
    transport = RelpTLSTransport(
        Address("relp+tls", "127.0.0.1", peer.relp_port),
        timeout=TIMEOUT,
        tls=tls,
        backoff=Backoff(0.05, 0.5),
    )
    delivery = BackgroundDelivery(transport)
    for i in range(300):
        delivery.deliver(payload(i))
    assert delivery.flush(15.0), delivery.stats.snapshot()
    delivery.close(5.0)
    order, dupes = first_arrivals(number_of(r.get("msg", "")) for r in peer.records())
    assert order == list(range(300)) and dupes == 0
    assert delivery.stats.snapshot()["acknowledged"] == 300
