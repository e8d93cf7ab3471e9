"""UDP transport: one connected datagram socket, resolved once per connect."""

from __future__ import annotations

import socket

from syslogkit.transports.base import HostTransport

__all__ = ["UDPTransport"]


class UDPTransport(HostTransport):
    """Datagrams to a host and port. `connect` on UDP only fixes the peer (no traffic)."""

    def _connect(self, deadline: float) -> socket.socket:
        return self._connect_host(socket.SOCK_DGRAM, deadline, _non_blocking)


def _non_blocking(sock: socket.socket) -> None:
    sock.setblocking(False)
