"""Unix datagram transport (`unix:///dev/log`): the local syslog daemon's socket."""

from __future__ import annotations

import errno
import socket

from syslogkit.transports import Transport, TransportError, remaining

__all__ = ["UnixDatagramTransport"]


class UnixDatagramTransport(Transport):
    """Datagrams to a unix socket path; reconnects when the daemon recreates the socket."""

    def _connect(self, deadline: float) -> socket.socket:
        path = self.address.path
        assert path is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.settimeout(remaining(deadline))
            sock.connect(path)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EPROTOTYPE:
                raise TransportError(
                    "unreachable", f"{path} is a stream socket: use unix+stream://{path}"
                ) from exc
            raise
        return sock
