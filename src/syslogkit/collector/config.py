"""What a collector is told: listen URLs (`ListenAddress`), per-listener limits, time zones.

A listen URL is `scheme://host:port` with a scheme of the one table (`transports.schemes`),
optionally `?tz=ZONE`: the zone given to timestamps that carry no UTC offset on that listener
(see `zone_of`), and `?max_connections_per_peer=N`: that listener's limit per source address
(over `Limits.max_connections_per_peer`; see `ListenAddress.limits`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone, tzinfo
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syslogkit.transports.schemes import NETWORK_SCHEMES, SCHEMES

__all__ = ["DEFAULT_PORTS", "Limits", "ListenAddress", "parse_listen_url", "zone_of"]

DEFAULT_PORTS = NETWORK_SCHEMES


@dataclass(frozen=True)
class ListenAddress:
    """A listener: scheme (udp, tcp, tls, relp, relp+tls), host and port (0: any free port),
    the zone for offset-less timestamps (None: the collector's) and its own connection limit
    per source address (None: the collector's)."""

    scheme: str
    host: str
    port: int
    zone: str | None = None
    max_connections_per_peer: int | None = None

    @property
    def is_tls(self) -> bool:
        return SCHEMES[self.scheme].tls

    @property
    def is_relp(self) -> bool:
        return SCHEMES[self.scheme].relp

    def bound(self, port: int) -> ListenAddress:
        """The same listener on the port it was given."""
        return replace(self, port=port)

    def limits(self, limits: Limits) -> Limits:
        """The collector's limits with this listener's own over them."""
        if self.max_connections_per_peer is None:
            return limits
        return replace(limits, max_connections_per_peer=self.max_connections_per_peer)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_listen_url(url: str) -> ListenAddress:
    """`udp://127.0.0.1:5514`, `tcp://[::1]:514`, `tls://0.0.0.0` (default port),
    `udp://0.0.0.0:514?tz=Europe/Paris`, `tcp://0.0.0.0:514?max_connections_per_peer=16`, ..."""
    if "://" not in url:
        raise ValueError(f"listen address {url!r} is not a URL like tcp://127.0.0.1:5514")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            f"listen address {url!r}: scheme must be one of {', '.join(DEFAULT_PORTS)}"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    if parts.path not in ("", "/") or parts.fragment or set(query) - set(_QUERY_KEYS):
        raise ValueError(
            f"listen address {url!r}: only scheme://host:port[?tz=ZONE]"
            "[&max_connections_per_peer=N] is allowed"
        )
    zone = query["tz"][-1] if "tz" in query else None
    if zone is not None:
        zone_of(zone)  # refuse an unknown zone now
    per_peer_text = query.get("max_connections_per_peer")
    per_peer = _positive(url, per_peer_text[-1]) if per_peer_text else None
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"listen address {url!r}: bad port") from exc
    host = parts.hostname
    if not host:
        raise ValueError(f"listen address {url!r}: no host (use 0.0.0.0 or [::] for all)")
    return ListenAddress(
        scheme, host, DEFAULT_PORTS[scheme] if port is None else port, zone, per_peer
    )


_QUERY_KEYS = ("tz", "max_connections_per_peer")


def _positive(url: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"listen address {url!r}: max_connections_per_peer must be a number >= 1")
    return int(text)


def zone_of(name: str | tzinfo | None) -> tzinfo | None:
    """The zone for timestamps without a UTC offset: None (or "local") for the collector's
    local zone, "UTC", a fixed offset ("+05:30") or an IANA name ("Europe/Paris").

    rsyslog and syslog-ng read such a timestamp as the receiver's local time; so does the
    collector unless told otherwise. ValueError for a zone that is not known here.
    """
    if name is None or isinstance(name, tzinfo):
        return name
    text = name.strip()
    if text.lower() in ("", "local"):
        return None
    if text.upper() in ("UTC", "Z"):
        return timezone.utc
    if text[:1] in "+-" and len(text) == 6 and text[3] == ":":
        try:
            minutes = int(text[1:3]) * 60 + int(text[4:6])
        except ValueError:
            pass
        else:
            if minutes < 24 * 60:
                return timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (local, UTC, +05:30 or a name like Europe/Paris)"
        ) from None


def reference_in(zone: tzinfo | None) -> datetime | None:
    """Now in `zone`: what the parsers take as `reference` (year and zone of a timestamp
    without them); None leaves the codec's default (now, in the local zone)."""
    return None if zone is None else datetime.now(zone)


@dataclass
class Limits:
    """Per-listener limits (see `collector.server`). `max_connections_per_peer`: connections
    (TLS handshakes in progress included) one source address may hold on one listener."""

    max_frame: int = 8192
    max_connections: int = 512
    max_connections_per_peer: int = 64
    frame_timeout: float = 10.0
    idle_timeout: float | None = None
    handshake_timeout: float = 10.0
    udp_rcvbuf: int = 32 << 20
    relp_window: int = 128
