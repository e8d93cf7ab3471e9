"""Where to send: syslog addresses as URLs or in the stdlib `SysLogHandler` forms.

`udp://host:514`, `tcp://host:514`, `tls://host:6514`, `relp://host:2514` (and `relp+tls://`),
`unix:///dev/log` (datagram) and `unix+stream:///path`; IPv4, `[IPv6]` and names. Also
`("host", 514)` with an optional `socktype`, `"host:514"`, a path string, and nothing (the local
syslog daemon).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Union

from syslogkit.transports.schemes import NETWORK_SCHEMES, SCHEMES

__all__ = [
    "DEFAULT_PORTS",
    "LOCAL_SOCKET",
    "Address",
    "AddressInput",
    "default_address",
    "parse_address",
]

#: Default port per network scheme (from the one table in `transports.schemes`).
DEFAULT_PORTS: Final = NETWORK_SCHEMES

#: The local syslog daemon's socket, where it exists.
LOCAL_SOCKET: Final = "/dev/log"

_NETWORK: Final = frozenset(NETWORK_SCHEMES)
_UNIX: Final = frozenset(name for name, s in SCHEMES.items() if s.unix)
_SCHEME_ALIASES: Final = {"unix+dgram": "unix", "unixgram": "unix", "unixstream": "unix+stream"}
_HOSTNAME_RE: Final = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")

#: What `parse_address` accepts.
AddressInput = Union["Address", str, Sequence[Union[str, int]], None]  # noqa: UP007


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed syslog destination: a network scheme with host and port, or a unix path."""

    scheme: str
    host: str | None = None
    port: int | None = None
    path: str | None = None

    @property
    def is_unix(self) -> bool:
        """True for unix domain sockets."""
        return self.scheme in _UNIX

    @property
    def is_stream(self) -> bool:
        """True for stream transports (framed), False for datagrams."""
        return SCHEMES[self.scheme].stream

    def __str__(self) -> str:
        if self.is_unix:
            return f"{self.scheme}://{self.path}"
        host = self.host or ""
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"


def _socktype_is_stream(socktype: int | str | None) -> bool | None:
    """True for SOCK_STREAM, False for SOCK_DGRAM, None when not given."""
    if socktype is None:
        return None
    if isinstance(socktype, str):
        name = socktype.strip().lower().removeprefix("socket.").removeprefix("sock_")
        if name in ("stream", "dgram"):
            return name == "stream"
        raise ValueError(f"socktype {socktype!r} is neither 'stream' nor 'dgram'")
    if socktype == socket.SOCK_STREAM:
        return True
    if socktype == socket.SOCK_DGRAM:
        return False
    raise ValueError(f"socktype {socktype!r} is neither SOCK_STREAM nor SOCK_DGRAM")


def _check_port(value: str | int, text: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"bad port in syslog address {text!r}")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"bad port {value!r} in syslog address {text!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range (1..65535) in syslog address {text!r}")
    return port


def _check_host(host: str, text: object) -> str:
    """A bare IPv6 literal (without brackets), an IPv4 literal or a host name."""
    if not host:
        raise ValueError(f"no host in syslog address {text!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"bad IPv6 address {host!r} in syslog address {text!r}") from None
        return host
    if not _HOSTNAME_RE.match(host):
        raise ValueError(f"bad host name {host!r} in syslog address {text!r}")
    return host


def _split_hostport(netloc: str, default_port: int, text: object) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` -> (host, port)."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in syslog address {text!r}")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if ":" not in host:
            raise ValueError(f"brackets hold no IPv6 address in syslog address {text!r}")
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after ']' in syslog address {text!r}")
        port = _check_port(rest[1:], text) if rest else default_port
        return _check_host(host, text), port
    if netloc.count(":") > 1:
        raise ValueError(f"IPv6 addresses need brackets, e.g. [::1]:514, in {text!r}")
    host, sep, port_text = netloc.partition(":")
    port = _check_port(port_text, text) if sep else default_port
    return _check_host(host, text), port


def _unix_path(rest: str, text: object) -> str:
    """The path of `unix:///path` (rest is what follows `unix:`)."""
    if rest.startswith("///"):
        path = rest[2:]
    elif rest.startswith("//"):
        raise ValueError(
            f"unix address {text!r} names a host; write unix:///absolute/path (three slashes)"
        )
    else:
        path = rest
    if not path:
        raise ValueError(f"no path in unix address {text!r}")
    return path


def _parse_url(text: str, stream: bool | None) -> Address:
    scheme, _, rest = text.partition(":")
    scheme = scheme.strip().lower()
    scheme = _SCHEME_ALIASES.get(scheme, scheme)
    if scheme in _UNIX:
        if scheme == "unix" and stream:
            scheme = "unix+stream"
        elif scheme == "unix+stream" and stream is False:
            raise ValueError(f"{text!r} is a stream socket but socktype asks for datagrams")
        return Address(scheme, path=_unix_path(rest, text))
    if scheme not in _NETWORK:
        known = ", ".join(sorted(_NETWORK | _UNIX))
        raise ValueError(f"unknown scheme {scheme!r} in syslog address {text!r} (known: {known})")
    if (scheme == "udp" and stream) or (scheme != "udp" and stream is False):
        raise ValueError(f"socktype contradicts the scheme of syslog address {text!r}")
    netloc = rest[2:] if rest.startswith("//") else rest
    netloc = netloc.rstrip("/")
    if "/" in netloc or "?" in netloc or "@" in netloc:
        raise ValueError(f"syslog address {text!r} takes only host and port")
    host, port = _split_hostport(netloc, DEFAULT_PORTS[scheme], text)
    return Address(scheme, host=host, port=port)


def _parse_plain(text: str, stream: bool | None) -> Address:
    """A path (`/dev/log`, `./sock`) or `host[:port]` without a scheme."""
    if "/" in text:
        return Address("unix+stream" if stream else "unix", path=text)
    scheme = "tcp" if stream else "udp"
    host, port = _split_hostport(text, DEFAULT_PORTS[scheme], text)
    return Address(scheme, host=host, port=port)


def _parse_pair(pair: Sequence[str | int], stream: bool | None) -> Address:
    if len(pair) != 2 or not isinstance(pair[0], str):
        raise ValueError(f"syslog address {pair!r} is not a (host, port) pair")
    host = pair[0][1:-1] if pair[0].startswith("[") and pair[0].endswith("]") else pair[0]
    scheme = "tcp" if stream else "udp"
    return Address(scheme, host=_check_host(host, pair), port=_check_port(pair[1], pair))


def default_address(socktype: int | str | None = None) -> Address:
    """The local syslog daemon: `/dev/log` where it exists, else `udp://localhost:514`."""
    stream = _socktype_is_stream(socktype)
    if os.path.exists(LOCAL_SOCKET):
        return Address("unix+stream" if stream else "unix", path=LOCAL_SOCKET)
    scheme = "tcp" if stream else "udp"
    return Address(scheme, host="localhost", port=DEFAULT_PORTS[scheme])


def parse_address(address: AddressInput = None, socktype: int | str | None = None) -> Address:
    """An `Address` from a URL, a stdlib-style address, or None (the local daemon).

    `socktype` (`socket.SOCK_STREAM`/`SOCK_DGRAM` or `"stream"`/`"dgram"`) picks TCP or UDP for
    the stdlib forms and must agree with a URL's scheme. Raises ValueError for bad input.
    """
    stream = _socktype_is_stream(socktype)
    if address is None:
        return default_address(socktype)
    if isinstance(address, Address):
        return address
    if isinstance(address, str):
        text = address.strip()
        if not text:
            return default_address(socktype)
        if "://" in text or text.lower().startswith(("unix:", "unix+stream:")):
            return _parse_url(text, stream)
        return _parse_plain(text, stream)
    if isinstance(address, Sequence):
        return _parse_pair(address, stream)
    raise TypeError(f"syslog address must be a string, a (host, port) pair or None: {address!r}")
