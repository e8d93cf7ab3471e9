"""The one table of syslog URL schemes: default port, what each scheme is made of, and so which
transport class carries it.

The sender's addresses (`transports.address`), the collector's listen URLs and `make_transport`
all read it. RELP has no registered port; 2514 is the one rsyslog's documentation uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from syslogkit.transports.address import Address
    from syslogkit.transports.backoff import Backoff
    from syslogkit.transports.base import Transport
    from syslogkit.transports.tls import TLSConfig

__all__ = ["NETWORK_SCHEMES", "SCHEMES", "Scheme", "default_port", "make_transport"]


@dataclass(frozen=True)
class Scheme:
    """What a URL scheme means: its default port (None for unix paths), and whether it is a
    byte stream, runs over TLS, and carries RELP."""

    name: str
    port: int | None
    stream: bool
    tls: bool = False
    relp: bool = False

    @property
    def unix(self) -> bool:
        """True for a unix socket path."""
        return self.port is None


SCHEMES: Final[dict[str, Scheme]] = {
    s.name: s
    for s in (
        Scheme("udp", 514, stream=False),
        Scheme("tcp", 514, stream=True),
        Scheme("tls", 6514, stream=True, tls=True),
        Scheme("relp", 2514, stream=True, relp=True),
        Scheme("relp+tls", 2514, stream=True, tls=True, relp=True),
        Scheme("unix", None, stream=False),
        Scheme("unix+stream", None, stream=True),
    )
}

#: the schemes that take host:port, with their default ports
NETWORK_SCHEMES: Final[dict[str, int]] = {
    name: s.port for name, s in SCHEMES.items() if s.port is not None
}


def default_port(scheme: str) -> int:
    """The default port of a network scheme (KeyError for an unknown or unix scheme)."""
    return NETWORK_SCHEMES[scheme]


def make_transport(
    address: Address,
    *,
    timeout: float,
    backoff: Backoff | None = None,
    tls: TLSConfig | None = None,
    window: int = 128,
) -> Transport:
    """The transport for an address, chosen by its scheme's row: RELP (over TLS or not), a unix
    socket (stream or datagram), TLS, TCP or UDP. `window` is RELP's; `tls` is required for
    the TLS schemes.

    The classes are imported here, not at the top: the table stays cheap to import for the
    collector's listen URLs and for `address`, which the transports themselves use.
    """
    from syslogkit.transports.relp import RelpTLSTransport, RelpTransport
    from syslogkit.transports.stream import TCPTransport, TLSTransport, UnixStreamTransport
    from syslogkit.transports.udp import UDPTransport
    from syslogkit.transports.unix import UnixDatagramTransport

    scheme = SCHEMES.get(address.scheme)
    if scheme is None:
        raise ValueError(f"no transport for {address.scheme}://")
    if scheme.tls:
        if tls is None:
            raise ValueError(f"a {scheme.name}:// address needs TLS settings")
        if scheme.relp:
            return RelpTLSTransport(
                address, timeout=timeout, backoff=backoff, tls=tls, window=window
            )
        return TLSTransport(address, timeout=timeout, backoff=backoff, tls=tls)
    if scheme.relp:
        return RelpTransport(address, timeout=timeout, backoff=backoff, window=window)
    if scheme.unix:
        kind = UnixStreamTransport if scheme.stream else UnixDatagramTransport
        return kind(address, timeout=timeout, backoff=backoff)
    plain = TCPTransport if scheme.stream else UDPTransport
    return plain(address, timeout=timeout, backoff=backoff)
