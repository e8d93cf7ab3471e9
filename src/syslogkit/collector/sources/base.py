"""What the listeners share: the `Listener` base, peer names, the per-peer table, TLS subjects.

Decisions (issue 26, one peer cannot starve the others):

- A peer is a source address (`peer_host`: the host without the port; one IPv6 address is
  one peer). `PeerTable` keeps, per peer, the connections it holds now and what it was
  given, refused and cut: the numbers the stream listeners decide on and `/metrics` shows.
- The table is bounded: beyond `MAX_PEERS` peers, those holding no connection are forgotten,
  the least busy first, so a sender walking through addresses cannot grow it without end.
  `top()` gives the `TOP_PEERS` busiest (connections given plus refused) for the stats.
- Refusals are told in one line per listener per `NOTICE_INTERVAL` seconds, naming the peers
  refused most (`refusal_notice`); the first refusal is told at once.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterable
from datetime import tzinfo
from typing import Any, Generic, TypeVar

from ..config import Limits, ListenAddress
from ..decode import Decoder
from ..pipeline import Pipeline
from ..stats import ListenerStats

__all__ = [
    "MAX_PEERS",
    "NOTICE_INTERVAL",
    "TOP_PEERS",
    "Listener",
    "Peer",
    "PeerTable",
    "peer_host",
    "peer_name",
    "tell",
    "tls_subject",
]

#: peers whose counters a listener keeps (beyond it, idle peers are forgotten)
MAX_PEERS = 4096
#: peers per listener in the stats and /metrics (the busiest)
TOP_PEERS = 10
#: seconds between two lines telling refused connections
NOTICE_INTERVAL = 10.0
#: peers named in one refusal line
_NAMED = 3

C = TypeVar("C")

_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "emailAddress",
    "domainComponent": "DC",
}


def _rdn_value(value: str) -> str:
    """An attribute value escaped as RFC 4514 §2.4 says (`,+"\\<>;=`, a leading `#` or space, a
    trailing space), and control characters as `\\XX`: `OU=a,CN=admin` cannot pass for two
    attributes, nor a newline split the line it is shown in."""
    out = []
    for i, char in enumerate(value):
        if (
            char in ',+"\\<>;='
            or (i == 0 and char in "# ")
            or (i == len(value) - 1 and char == " ")
        ):
            out.append("\\" + char)
        elif ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            out.append(f"\\{ord(char):02X}")
        else:
            out.append(char)
    return "".join(out)


def tls_subject(cert: dict[str, Any] | None) -> str | None:
    """A peer certificate's subject as `CN=...,O=...` (None without one), values escaped as
    RFC 4514 says."""
    if not cert or "subject" not in cert:
        return None
    parts = []
    for rdn in cert["subject"]:
        for name, value in rdn:
            parts.append(f"{_SHORT_NAMES.get(name, name)}={_rdn_value(str(value))}")
    return ",".join(parts) or None


def peer_name(addr: Any) -> str:
    """`host:port`, `[v6]:port`, or what the socket gave."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = str(addr[0])
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return str(addr) if addr else "-"


def peer_host(addr: Any) -> str:
    """The source address a connection is counted under: its host, without the port."""
    if isinstance(addr, tuple) and addr:
        return str(addr[0])
    return str(addr) if addr else "-"


def tell(line: str) -> None:
    """One line for the operator on stderr (a broken stderr is not the collector's end)."""
    stream = sys.stderr
    if stream is None:
        return
    with contextlib.suppress(Exception):
        stream.write(line + "\n")
        stream.flush()


class Peer(Generic[C]):
    """One source address: the connections it holds now (`held`), how many it was given,
    refused and had cut, and the refusals not yet told."""

    __slots__ = ("connections", "cut", "held", "host", "refused", "untold")

    def __init__(self, host: str) -> None:
        self.host = host
        self.held: set[C] = set()
        self.connections = 0
        self.refused = 0
        self.cut = 0
        self.untold = 0

    @property
    def weight(self) -> int:
        """How much this peer asked for: connections given plus refused."""
        return self.connections + self.refused

    def as_dict(self) -> dict[str, Any]:
        return {
            "peer": self.host,
            "active": len(self.held),
            "connections": self.connections,
            "refused": self.refused,
            "cut": self.cut,
        }


class PeerTable(Generic[C]):
    """The peers of one listener (one thread: the listener's event loop)."""

    def __init__(self, max_peers: int = MAX_PEERS) -> None:
        self.max_peers = max_peers
        self._peers: dict[str, Peer[C]] = {}
        self._told_at: float | None = None

    def __len__(self) -> int:
        return len(self._peers)

    def peer(self, host: str) -> Peer[C]:
        """The peer of `host`, made on its first connection."""
        found = self._peers.get(host)
        if found is None:
            if len(self._peers) >= self.max_peers:
                self._forget_idle()
            found = self._peers[host] = Peer(host)
        return found

    def _forget_idle(self) -> None:
        """Forget half of the peers that hold no connection, the least busy first."""
        idle = sorted((p for p in self._peers.values() if not p.held), key=lambda p: p.weight)
        for peer in idle[: max(1, len(idle) // 2)]:
            del self._peers[peer.host]

    def holding(self) -> list[Peer[C]]:
        """The peers that hold connections, the most first."""
        holders = [p for p in self._peers.values() if p.held]
        holders.sort(key=lambda p: len(p.held), reverse=True)
        return holders

    def top(self, n: int = TOP_PEERS) -> list[dict[str, Any]]:
        """The `n` busiest peers' counters."""
        busiest = sorted(self._peers.values(), key=lambda p: p.weight, reverse=True)[:n]
        return [p.as_dict() for p in busiest]

    def refusal_notice(self, url: str, limits: Limits, now: float, *, due: bool) -> str | None:
        """The line telling the refusals not yet told, when one is due (`due`: whatever the
        interval, e.g. at shutdown); None when there is nothing to tell or it is too soon."""
        if not due and self._told_at is not None and now - self._told_at < NOTICE_INTERVAL:
            return None
        untold = [p for p in self._peers.values() if p.untold]
        if not untold:
            return None
        since = "" if self._told_at is None else f" in the last {now - self._told_at:.1f} s"
        self._told_at = now
        untold.sort(key=lambda p: p.untold, reverse=True)
        line = _refusal_line(url, untold, limits, since)
        for peer in untold:
            peer.untold = 0
        return line


def _refusal_line(url: str, untold: Iterable[Peer[Any]], limits: Limits, since: str) -> str:
    peers = list(untold)
    named = ", ".join(f"{p.untold} from {p.host} ({p.refused} in all)" for p in peers[:_NAMED])
    rest = peers[_NAMED:]
    if rest:
        named += f" and {sum(p.untold for p in rest)} from {len(rest)} other peers"
    return (
        f"syslogkit collect: {url} refused connections{since}: {named} (limits: "
        f"{limits.max_connections_per_peer} per peer, {limits.max_connections} in all)"
    )


class Listener:
    """One listening address: its stats, its decoder, the pipeline it feeds."""

    def __init__(
        self, address: ListenAddress, pipeline: Pipeline, limits: Limits, zone: tzinfo | None
    ) -> None:
        self.address = address
        self.scheme = address.scheme
        self.url = str(address)
        self.pipeline = pipeline
        self.limits = address.limits(limits)
        self.stats = ListenerStats(self.url)
        self.decoder = Decoder(
            self.stats,
            transport=self.scheme,
            listener=self.url,
            max_frame=limits.max_frame,
            zone=zone,
        )
        self.last_error: str | None = None
        #: a socket bound already (systemd's, or bound before dropping privileges): used
        #: instead of binding (`collector.systemd`)
        self.given: socket.socket | None = None

    def bound(self, port: int) -> None:
        """The listener got its port (the URL names it from now on)."""
        self.address = self.address.bound(port)
        self.url = self.stats.url = self.decoder.listener = str(self.address)

    def stats_dict(self) -> dict[str, Any]:
        out = self.stats.as_dict()
        if self.last_error:
            out["last_error"] = self.last_error
        return out
