"""TLS settings: client contexts (hostname check, certificate fingerprint pinning) and the one
server settings class (`ServerTLSConfig`, the collector's listeners).

A pinned fingerprint (RFC 5425 §4.2.2 `sha-256:AB:CD:...`/`sha-1:...`, or rsyslog's
`SHA256:ab:cd:...`/`SHA1:...`, any case) replaces CA validation and the hostname check; it is
checked right after the handshake, before the first byte of data is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FingerprintMismatch",
    "Pin",
    "ServerTLSConfig",
    "TLSConfig",
    "build_context",
    "check_fingerprint",
    "fingerprint",
    "parse_fingerprint",
]

_ALGORITHMS: Final = {
    "sha1": 20,
    "sha224": 28,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
}
_HEX_RE: Final = re.compile(r"^[0-9a-fA-F]+$")
#: DESIGN.md: TLS 1.2 at least, client and server side
_MINIMUM_VERSION: Final = ssl.TLSVersion.TLSv1_2


class FingerprintMismatch(ssl.SSLError):
    """The peer's certificate matches none of the pinned fingerprints."""


@dataclass(frozen=True, slots=True)
class Pin:
    """One pinned certificate fingerprint: a hashlib algorithm name and the digest."""

    algorithm: str
    digest: bytes

    def __str__(self) -> str:
        name = "sha-" + self.algorithm[3:]
        return name + ":" + ":".join(f"{b:02X}" for b in self.digest)


def parse_fingerprint(text: str) -> Pin:
    """A `Pin` from `sha-256:AB:CD:..`, `SHA256:ab:cd:..` or `sha1:abcd..` (any case).

    Raises ValueError for an unknown algorithm or a digest of the wrong length.
    """
    name, sep, hex_part = text.strip().partition(":")
    algorithm = name.strip().lower().replace("-", "")
    if not sep or algorithm not in _ALGORITHMS:
        known = ", ".join(f"sha-{a[3:]}" for a in _ALGORITHMS)
        raise ValueError(f"fingerprint {text!r} does not start with a known hash ({known}):")
    digits = hex_part.replace(":", "").replace(" ", "")
    if not _HEX_RE.match(digits) or len(digits) != 2 * _ALGORITHMS[algorithm]:
        raise ValueError(
            f"fingerprint {text!r}: expected {_ALGORITHMS[algorithm]} hex bytes for {name}"
        )
    return Pin(algorithm, bytes.fromhex(digits))


def fingerprint(der: bytes, algorithm: str = "sha256") -> str:
    """The RFC 5425 text fingerprint (`sha-256:AB:...`) of a DER certificate."""
    return str(Pin(algorithm, hashlib.new(algorithm, der).digest()))


def check_fingerprint(der: bytes | None, pins: Iterable[Pin]) -> None:
    """Raise FingerprintMismatch unless the DER certificate matches one of the pins."""
    if der is None:
        raise FingerprintMismatch("the server presented no certificate to check the pin against")
    for pin in pins:
        if hmac.compare_digest(hashlib.new(pin.algorithm, der).digest(), pin.digest):
            return
    seen = fingerprint(der)
    raise FingerprintMismatch(f"server certificate {seen} matches no pinned fingerprint")


def _pins(value: str | Iterable[str] | None) -> tuple[Pin, ...]:
    if value is None:
        return ()
    texts = [value] if isinstance(value, str) else list(value)
    return tuple(parse_fingerprint(t) for t in texts if t.strip())


@contextlib.contextmanager
def _naming_files(**files: str | None) -> Iterator[None]:
    """Re-raise OpenSSL's file errors (which name no file) as ValueErrors that do."""
    try:
        yield
    except OSError as exc:  # ssl.SSLError included
        named = ", ".join(f"{key}={value!r}" for key, value in files.items() if value)
        raise ValueError(f"cannot load {named}: {exc.strerror or exc}") from exc


#: how a server asks for client certificates (`build_server_context`)
CLIENT_AUTH: Final = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def build_server_context(
    *,
    cert_file: str,
    key_file: str | None = None,
    key_password: str | None = None,
    ca_file: str | None = None,
    ca_dir: str | None = None,
    client_auth: str = "optional",
) -> ssl.SSLContext:
    """A server SSLContext: TLS 1.2 minimum, certificate and key, client certificates `none`
    (not asked), `optional` (verified against the CA when sent) or `required`, and no TLS 1.3
    session tickets (a sender that never reads must not lose what it wrote)."""
    if client_auth not in CLIENT_AUTH:
        raise ValueError("client_auth must be none, optional or required")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _MINIMUM_VERSION
    # No TLS 1.3 session tickets: a client that writes and closes without reading would have
    # them unread in its receive buffer, so its kernel would answer our data with a reset and
    # ours would discard what we had not read yet (most of a burst, with loggen).
    context.num_tickets = 0
    with _naming_files(cert_file=cert_file, key_file=key_file):
        context.load_cert_chain(cert_file, key_file, password=key_password)
    if client_auth != "none":
        if not ca_file and not ca_dir:
            raise ValueError(f"client_auth={client_auth} needs a CA file or directory")
        with _naming_files(ca_file=ca_file, ca_dir=ca_dir):
            context.load_verify_locations(cafile=ca_file, capath=ca_dir)
        context.verify_mode = CLIENT_AUTH[client_auth]
    return context


@dataclass(frozen=True)
class ServerTLSConfig:
    """The server side of TLS (collector listeners), spelled like the client's options.

    `client_auth`: "none" (no client certificate asked), "optional" (verified against the CA
    when sent), "required" (a client without a certificate chaining to the CA is refused).
    """

    cert_file: str
    key_file: str | None = None
    ca_file: str | None = None
    ca_dir: str | None = None
    client_auth: str = "optional"
    key_password: str | None = None

    def context(self) -> ssl.SSLContext:
        """A new server context from these settings (`build_server_context`)."""
        return build_server_context(
            cert_file=self.cert_file,
            key_file=self.key_file,
            key_password=self.key_password,
            ca_file=self.ca_file,
            ca_dir=self.ca_dir,
            client_auth=self.client_auth,
        )


def build_context(
    *,
    ca_file: str | None = None,
    ca_dir: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    key_password: str | None = None,
    verify_hostname: bool = True,
    pinned: bool = False,
) -> ssl.SSLContext:
    """A client SSLContext: TLS 1.2 minimum, CA file/dir or the system store, client cert.

    With `pinned`, certificate validation is left to the fingerprint check (no CA, no hostname).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = _MINIMUM_VERSION
    if pinned:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = verify_hostname
        context.verify_mode = ssl.CERT_REQUIRED
        if ca_file or ca_dir:
            with _naming_files(ca_file=ca_file, ca_dir=ca_dir):
                context.load_verify_locations(cafile=ca_file, capath=ca_dir)
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert_file:
        with _naming_files(cert_file=cert_file, key_file=key_file):
            context.load_cert_chain(cert_file, key_file, password=key_password)
    elif key_file:
        raise ValueError("key_file given without cert_file")
    return context


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Everything a TLS transport needs: the context, the name to check, the pins."""

    context: ssl.SSLContext
    server_hostname: str | None
    pins: tuple[Pin, ...] = ()
    confirm_timeout: float = 0.5

    @classmethod
    def create(
        cls,
        host: str | None,
        *,
        ca_file: str | None = None,
        ca_dir: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        key_password: str | None = None,
        server_hostname: str | None = None,
        verify_hostname: bool = True,
        fingerprint: str | Iterable[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        confirm_timeout: float = 0.5,
    ) -> TLSConfig:
        """Build the settings; `ssl_context` is used as given (pins still apply on top)."""
        pins = _pins(fingerprint)
        if ssl_context is None:
            ssl_context = build_context(
                ca_file=ca_file,
                ca_dir=ca_dir,
                cert_file=cert_file,
                key_file=key_file,
                key_password=key_password,
                verify_hostname=verify_hostname,
                pinned=bool(pins),
            )
        name = server_hostname or host
        return cls(ssl_context, name, pins, confirm_timeout)
