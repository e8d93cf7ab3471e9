"""Unix datagram transport (`unix:///dev/log`): the local syslog daemon's socket."""

from __future__ import annotations

import socket

from syslogkit.transports.base import Transport, connect_unix

__all__ = ["UnixDatagramTransport"]


class UnixDatagramTransport(Transport):
    """Datagrams to a unix socket path; reconnects when the daemon recreates the socket."""

    def _connect(self, deadline: float) -> socket.socket:
        path = self.address.path
        assert path is not None
        return connect_unix(path, socket.SOCK_DGRAM, deadline)
