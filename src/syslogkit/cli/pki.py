"""A small PKI for mutual TLS: a CA, server certificates and client certificates as PEM files.

Needs `cryptography` (the `[cli]` extra); everything else in syslogkit works without it.
Fingerprints are computed with the standard library.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = ["CertPaths", "Pki", "fingerprint", "fingerprints", "require_cryptography", "write_pki"]

MISSING_CRYPTOGRAPHY = "this command needs the 'cryptography' package: pip install 'syslogkit[cli]'"


def require_cryptography() -> None:
    """Raise a one-line RuntimeError when `cryptography` is not installed."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise RuntimeError(MISSING_CRYPTOGRAPHY) from None


def fingerprint(cert_pem: str | bytes, algorithm: str = "sha256", style: str = "rfc5425") -> str:
    """A PEM certificate's fingerprint: `sha-256:AB:..` (RFC 5425) or `SHA256:AB:..` (rsyslog)."""
    text = cert_pem.decode() if isinstance(cert_pem, bytes) else cert_pem
    der = ssl.PEM_cert_to_DER_cert(text)
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    pairs = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    if style == "rsyslog":
        return f"{algorithm.upper()}:{pairs}"
    label = {"sha256": "sha-256", "sha1": "sha-1"}.get(algorithm, algorithm)
    return f"{label}:{pairs}"


def fingerprints(cert_pem: str | bytes) -> dict[str, str]:
    """SHA-256 and SHA-1 fingerprints in both the RFC 5425 and the rsyslog form."""
    return {
        f"{algorithm}-{style}": fingerprint(cert_pem, algorithm, style)
        for algorithm in ("sha256", "sha1")
        for style in ("rfc5425", "rsyslog")
    }


@dataclass(frozen=True)
class CertPaths:
    """Where one certificate and its key were written."""

    name: str
    cert: Path
    key: Path

    def fingerprints(self) -> dict[str, str]:
        """Fingerprints of this certificate (see `fingerprints`)."""
        return fingerprints(self.cert.read_bytes())


@dataclass(frozen=True)
class Pki:
    """The files of a CA with its server and client certificates."""

    directory: Path
    ca: CertPaths
    servers: list[CertPaths] = field(default_factory=list)
    clients: list[CertPaths] = field(default_factory=list)


def _new_key() -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "syslogkit"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alt_names(names: list[str]) -> Any:
    from cryptography import x509

    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _builder(subject: Any, issuer: Any, public_key: Any, days: int) -> Any:
    from cryptography import x509

    now = _dt.datetime.now(_dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to a file only its owner can read, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, 0o600)


def _save(directory: Path, name: str, cert: Any, key: Any) -> CertPaths:
    from cryptography.hazmat.primitives import serialization

    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return CertPaths(name, cert_path, key_path)


def _make_ca(common_name: str, days: int) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _new_key()
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    ca_cert: Any, ca_key: Any, common_name: str, names: list[str], *, client: bool, days: int
) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = _new_key()
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        _builder(_name(common_name), ca_cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(_subject_alt_names(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _check_client_name(name: str) -> None:
    if name in ("ca", "server") or not name or "/" in name or name.startswith("."):
        raise ValueError(f"client name {name!r} cannot be used as a file name here")


def write_pki(
    directory: str | os.PathLike[str],
    *,
    server_names: list[str] | None = None,
    clients: list[str] | None = None,
    ca_name: str = "syslogkit CA",
    days: int = 825,
) -> Pki:
    """Write `ca.pem`, `server.pem` and one `<client>.pem` per client (keys as `*-key.pem`).

    The server certificate carries `server_names` (DNS names and IP addresses) in its
    subjectAltName; its common name is the first of them. Keys are readable by the owner only.
    """
    require_cryptography()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    server_names = server_names or ["localhost", "127.0.0.1", "::1"]
    ca_cert, ca_key = _make_ca(ca_name, days)
    ca = _save(out, "ca", ca_cert, ca_key)
    server_cert, server_key = _make_leaf(
        ca_cert, ca_key, server_names[0], server_names, client=False, days=days
    )
    servers = [_save(out, "server", server_cert, server_key)]
    client_paths = []
    for client in clients if clients is not None else ["client"]:
        _check_client_name(client)
        cert, key = _make_leaf(ca_cert, ca_key, client, [], client=True, days=days)
        client_paths.append(_save(out, client, cert, key))
    return Pki(out, ca, servers, client_paths)
