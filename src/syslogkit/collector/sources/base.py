"""What the listeners share: the `Listener` base, peer names, TLS subjects."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from ..config import Limits, ListenAddress
from ..decode import Decoder
from ..pipeline import Pipeline
from ..stats import ListenerStats

__all__ = ["Listener", "peer_name", "tls_subject"]

_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "emailAddress",
    "domainComponent": "DC",
}


def _rdn_value(value: str) -> str:
    """An attribute value escaped as RFC 4514 §2.4 says (`,+"\\<>;=`, a leading `#` or space, a
    trailing space), and control characters as `\\XX`: `OU=a,CN=admin` cannot pass for two
    attributes, nor a newline split the line it is shown in."""
    out = []
    for i, char in enumerate(value):
        if (
            char in ',+"\\<>;='
            or (i == 0 and char in "# ")
            or (i == len(value) - 1 and char == " ")
        ):
            out.append("\\" + char)
        elif ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F:
            out.append(f"\\{ord(char):02X}")
        else:
            out.append(char)
    return "".join(out)


def tls_subject(cert: dict[str, Any] | None) -> str | None:
    """A peer certificate's subject as `CN=...,O=...` (None without one), values escaped as
    RFC 4514 says."""
    if not cert or "subject" not in cert:
        return None
    parts = []
    for rdn in cert["subject"]:
        for name, value in rdn:
            parts.append(f"{_SHORT_NAMES.get(name, name)}={_rdn_value(str(value))}")
    return ",".join(parts) or None


def peer_name(addr: Any) -> str:
    """`host:port`, `[v6]:port`, or what the socket gave."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = str(addr[0])
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return str(addr) if addr else "-"


class Listener:
    """One listening address: its stats, its decoder, the pipeline it feeds."""

    def __init__(
        self, address: ListenAddress, pipeline: Pipeline, limits: Limits, zone: tzinfo | None
    ) -> None:
        self.address = address
        self.scheme = address.scheme
        self.url = str(address)
        self.pipeline = pipeline
        self.limits = limits
        self.stats = ListenerStats(self.url)
        self.decoder = Decoder(
            self.stats,
            transport=self.scheme,
            listener=self.url,
            max_frame=limits.max_frame,
            zone=zone,
        )
        self.last_error: str | None = None

    def bound(self, port: int) -> None:
        """The listener got its port (the URL names it from now on)."""
        self.address = self.address.bound(port)
        self.url = self.stats.url = self.decoder.listener = str(self.address)

    def stats_dict(self) -> dict[str, Any]:
        out = self.stats.as_dict()
        if self.last_error:
            out["last_error"] = self.last_error
        return out
