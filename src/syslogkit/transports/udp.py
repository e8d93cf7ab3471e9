"""UDP transport: one connected datagram socket, resolved once per connect."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from syslogkit.backoff import Backoff
from syslogkit.transports import Resolver, Transport, remaining

if TYPE_CHECKING:
    from syslogkit.address import Address

__all__ = ["UDPTransport"]


class UDPTransport(Transport):
    """Datagrams to a host and port. `connect` on UDP only fixes the peer (no traffic)."""

    def __init__(self, address: Address, *, timeout: float, backoff: Backoff | None = None) -> None:
        super().__init__(address, timeout=timeout, backoff=backoff)
        self._resolver = Resolver()

    def _connect(self, deadline: float) -> socket.socket:
        host, port = self.address.host, self.address.port
        assert host is not None and port is not None
        infos = self._resolver.resolve(host, port, socket.SOCK_DGRAM, remaining(deadline))
        last: OSError = OSError(f"no address found for {host!r}")
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            return sock
        raise last

    def forget(self) -> None:
        """In a forked child: drop the parent's socket and any lookup in flight."""
        super().forget()
        self._resolver.forget()
