"""The collector under systemd (or any supervisor): readiness, sockets handed over, privileges.

Decisions:

- `notify()` speaks systemd's notification protocol without a dependency: one datagram of
  `KEY=VALUE` lines to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the
  abstract namespace). Without the variable it does nothing; a failure to send is never fatal.
- Socket activation (`sd_listen_fds`): when `$LISTEN_PID` is this process, descriptors
  3 .. 3 + `$LISTEN_FDS` - 1 are listening sockets systemd bound. The variables are removed so
  that children do not take them too. A listener uses the inherited socket whose type, address
  and port are its own (`take_socket`; port 0 takes any port), instead of binding.
- Privileges: `bind_early()` binds the listeners' sockets the way the listeners do, so that a
  collector started as root binds (ports under 1024) and then drops to `--user`/`--group`
  (`drop_privileges`) before it opens a store, starts the store's writer process, or reads a
  TLS key: the listeners then take these sockets as they take systemd's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Mapping, MutableMapping, MutableSequence
from typing import Any

from .config import Limits, ListenAddress

__all__ = [
    "bind_early",
    "drop_privileges",
    "listen_fds",
    "notify",
    "set_receive_buffer",
    "take_socket",
]

LISTEN_FDS_START = 3
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` (`READY=1`, `STATUS=...`, several lines allowed) to `$NOTIFY_SOCKET`; True
    when it was sent."""
    env = os.environ if environ is None else environ
    target = env.get("NOTIFY_SOCKET")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True


def listen_fds(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The sockets systemd passed to this process (none when not socket-activated)."""
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID", ""), env.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return []
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets


def _kind(address: ListenAddress) -> int:
    return socket.SOCK_DGRAM if address.scheme == "udp" else socket.SOCK_STREAM


def _same_host(host: str, bound: str) -> bool:
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(bound)
    except ValueError:  # a name: what it resolves to
        try:
            infos = socket.getaddrinfo(host, None, flags=socket.AI_PASSIVE)
        except OSError:
            return False
        return any(_same_host(str(info[4][0]), bound) for info in infos)


def take_socket(
    pool: MutableSequence[socket.socket], address: ListenAddress
) -> socket.socket | None:
    """The socket of `pool` that is `address`'s (removed from the pool), or None."""
    for sock in pool:
        try:
            bound: Any = sock.getsockname()
        except OSError:
            continue
        if sock.type != _kind(address) or not isinstance(bound, tuple):
            continue
        host, port = str(bound[0]), int(bound[1])
        if (address.port in (0, port)) and _same_host(address.host, host):
            pool.remove(sock)
            return sock
    return None


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """A UDP socket's receive buffer: beyond the system's cap where allowed (root), else as
    large as allowed, never smaller than it is."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except OSError:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < size:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def bind_early(address: ListenAddress, limits: Limits) -> socket.socket:
    """`address` bound (and listening, for streams) as its listener would bind it."""
    kind = _kind(address)
    infos = socket.getaddrinfo(address.host, address.port, type=kind, flags=socket.AI_PASSIVE)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and kind == socket.SOCK_STREAM:  # as asyncio's servers
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_DGRAM:
            set_receive_buffer(sock, limits.udp_rcvbuf)
        sock.bind(sockaddr)
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


def drop_privileges(user: str | None, group: str | None) -> tuple[int, int]:
    """Become `user` (and `group`, default the user's own group), dropping supplementary
    groups; returns (uid, gid). ValueError for an unknown name; PermissionError when not root
    and not already that user."""
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(user) if user else pwd.getpwuid(os.getuid())
    except KeyError:
        raise ValueError(f"no such user: {user}") from None
    try:
        gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
    except KeyError:
        raise ValueError(f"no such group: {group}") from None
    uid = entry.pw_uid
    if os.geteuid() != 0:
        if (os.geteuid(), os.getegid()) != (uid, gid):
            raise PermissionError("--user/--group need the collector to start as root")
        return uid, gid
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    return uid, gid
