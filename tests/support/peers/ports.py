"""Free loopback ports for test peers.

Ports are picked at random below the kernel's ephemeral range, so the source ports of outgoing
connections (which the kernel takes from that range) never collide with a peer's listening port,
and checked free for both TCP and UDP by binding them. A port handed out once in this process is
not handed out again, so two peers started one after the other never get the same port before
either has bound it. Another process can still take a port between the check and the daemon's
bind: `RsyslogPeer.start` notices (the daemon does not own the socket) and retries on new ports.
"""

from __future__ import annotations

import random
import socket
import threading

_FLOOR = 20000
_CEILING = 32000
_handed_out: set[tuple[str, int]] = set()
_lock = threading.Lock()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(family: socket.AddressFamily, kind: socket.SocketKind, host: str, port: int) -> bool:
    with socket.socket(family, kind) as s:
        # No SO_REUSEADDR: a port with connections in TIME_WAIT counts as taken.
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when `port` can be bound on `host` for TCP and for UDP right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _bindable(family, socket.SOCK_STREAM, host, port) and _bindable(
        family, socket.SOCK_DGRAM, host, port
    )


def free_port(host: str = "127.0.0.1", attempts: int = 200) -> int:
    """A port free for TCP and UDP on `host`, not handed out before in this process."""
    high = min(_CEILING, _ephemeral_low())
    low = min(_FLOOR, high - 1000)
    rng = random.SystemRandom()
    with _lock:
        for _ in range(attempts):
            port = rng.randrange(low, high)
            if (host, port) in _handed_out:
                continue
            if is_free(port, host):
                _handed_out.add((host, port))
                return port
    raise RuntimeError(f"no free port on {host} in {low}..{high} after {attempts} tries")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free ports on `host`."""
    return [free_port(host) for _ in range(count)]
