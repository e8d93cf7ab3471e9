"""The one table of syslog URL schemes: default port, and what each scheme is made of.

The sender's addresses (`transports.address`) and the collector's listen URLs both read it.
RELP has no registered port; 2514 is the one rsyslog's documentation uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["NETWORK_SCHEMES", "SCHEMES", "Scheme", "default_port"]


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
