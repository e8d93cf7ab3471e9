"""Relaying: every record's raw bytes, unaltered, to another syslog server (RFC 5424 §4.2).

Built on syslogkit's own sending path: `transports` (address parsing, `make_transport` from the
table of schemes: UDP, TCP, TLS, RELP; failover between addresses) and
`delivery.background.BackgroundDelivery` (a bounded queue and a writer thread: a slow or absent
destination never holds up the store; reconnects with backoff; optionally a spool on disk).
Stream transports carry octet-counted frames; RELP frames by itself; a datagram carries one message.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from syslogkit.codec.framing import frame
from syslogkit.delivery.background import BackgroundDelivery
from syslogkit.transports.address import Address, parse_address
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.base import Transport
from syslogkit.transports.failover import FailoverTransport
from syslogkit.transports.schemes import SCHEMES, make_transport
from syslogkit.transports.tls import TLSConfig

from ..record import Record

__all__ = ["ForwardSink"]


class ForwardSink:
    """Relay records to `url` (udp, tcp, tls, relp, relp+tls, unix), `failover` addresses of the
    same scheme tried in turn.

    TLS: `ca_file`/`ca_dir` (else the system store), a client certificate (`cert_file`,
    `key_file`), or a pinned `fingerprint`. At most `max_queue` records wait in memory (more are
    dropped and counted); with `spool_dir` they go to disk while the destination is away.
    Counters: `stats()`.
    """

    def __init__(
        self,
        url: str,
        *,
        failover: Sequence[str] = (),
        ca_file: str | None = None,
        ca_dir: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        fingerprint: str | Iterable[str] | None = None,
        max_queue: int = 100_000,
        timeout: float = 5.0,
        spool_dir: str | os.PathLike[str] | None = None,
        relp_window: int = 128,
    ) -> None:
        try:
            addresses = [parse_address(url), *(parse_address(a) for a in failover)]
        except ValueError as exc:
            raise ValueError(f"forward: {exc}") from None
        first = addresses[0]
        if any(a.scheme != first.scheme for a in addresses):
            raise ValueError("forward: failover addresses must use the scheme of the first")
        if len(addresses) > 1 and not first.is_stream:
            raise ValueError("forward: failover needs stream addresses (tcp, tls, relp)")
        self.url = url
        self._framed = first.is_stream and not SCHEMES[first.scheme].relp
        transports = [
            make_transport(
                address,
                timeout=timeout,
                backoff=Backoff(0.1, 5.0),
                tls=_tls(address, ca_file, ca_dir, cert_file, key_file, fingerprint),
                window=relp_window,
            )
            for address in addresses
        ]
        transport: Transport = (
            transports[0] if len(transports) == 1 else FailoverTransport(transports)
        )
        self._delivery = BackgroundDelivery(
            transport,
            queue_size=max_queue,
            spool_dir=spool_dir,
            timeout=timeout,
            name="syslogkit-forward",
        )

    @property
    def label(self) -> str:
        return f"forward {self.url}"

    def write(self, records: Sequence[Record]) -> None:
        deliver = self._delivery.deliver
        if self._framed:
            for record in records:
                deliver(frame(record.raw))
        else:
            for record in records:
                deliver(record.raw)

    def flush(self) -> None:
        """Nothing to wait for: forwarding never holds up the store's commits."""

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (at most `timeout` seconds; then spooled, or dropped and
        counted), then close the connection."""
        self._delivery.close(timeout)

    def stats(self) -> dict[str, Any]:
        """The delivery's counters (sent, dropped by reason, reconnects, `queued`: admitted
        so far, ...), `pending` (in memory, not yet written) and the URL."""
        counts = self._delivery.stats.snapshot()
        return {"url": self.url} | counts | {"pending": self._delivery.pending}


def _tls(
    address: Address,
    ca_file: str | None,
    ca_dir: str | None,
    cert_file: str | None,
    key_file: str | None,
    fingerprint: str | Iterable[str] | None,
) -> TLSConfig | None:
    if not SCHEMES[address.scheme].tls:
        return None
    return TLSConfig.create(
        address.host,
        ca_file=ca_file,
        ca_dir=ca_dir,
        cert_file=cert_file,
        key_file=key_file,
        fingerprint=fingerprint,
    )
