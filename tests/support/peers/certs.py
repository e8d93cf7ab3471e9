"""A throwaway PKI for TLS tests, written to PEM files (made with trustme).

Two independent CAs: the main one signs `server` (SAN 127.0.0.1, ::1, localhost), `client` (SAN
and CN `client.syslogkit.test`) and `client2` (`client2.syslogkit.test`: right CA, wrong name or
fingerprint for x509/name and x509/fingerprint tests); the "other" CA signs `other_server` and
`other_client` with the same names as the main ones, so a test can show that a certificate from
the wrong CA is refused even when the name is right. Fingerprints are given in rsyslog's form
(`SHA256:AB:CD:...`, upper case), which is what `permittedPeer` takes for `x509/fingerprint`.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

SERVER_NAMES = ("127.0.0.1", "::1", "localhost")
CLIENT_NAME = "client.syslogkit.test"
CLIENT2_NAME = "client2.syslogkit.test"


def fingerprint(cert_pem: bytes, algorithm: str = "sha256") -> str:
    """rsyslog's form of a certificate fingerprint: `SHA256:AB:CD:...` or `SHA1:...`."""
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    pairs = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return f"{algorithm.upper()}:{pairs}"


@dataclass(frozen=True)
class CertFiles:
    """One certificate and its private key as PEM files, with its fingerprints."""

    cert: Path  # the certificate alone (PEM)
    key: Path  # its private key (PEM, unencrypted)
    name: str  # the name it was issued for (first SAN)
    sha1: str  # "SHA1:AB:..."
    sha256: str  # "SHA256:AB:..."


@dataclass(frozen=True)
class PKI:
    """Paths of a main CA with a server and a client certificate, and an unrelated "other" CA."""

    ca: CertFiles
    server: CertFiles
    client: CertFiles
    client2: CertFiles
    other_ca: CertFiles
    other_server: CertFiles
    other_client: CertFiles


def _write(directory: Path, stem: str, name: str, cert_pem: bytes, key_pem: bytes) -> CertFiles:
    cert = directory / f"{stem}.pem"
    key = directory / f"{stem}-key.pem"
    cert.write_bytes(cert_pem)
    key.touch(mode=0o600)
    key.write_bytes(key_pem)
    return CertFiles(
        cert=cert,
        key=key,
        name=name,
        sha1=fingerprint(cert_pem, "sha1"),
        sha256=fingerprint(cert_pem, "sha256"),
    )


def _issue(ca: trustme.CA, directory: Path, stem: str, names: tuple[str, ...]) -> CertFiles:
    leaf = ca.issue_cert(*names, common_name=names[0])
    return _write(
        directory,
        stem,
        names[0],
        leaf.cert_chain_pems[0].bytes(),
        leaf.private_key_pem.bytes(),
    )


def _ca(directory: Path, stem: str, organization: str) -> tuple[trustme.CA, CertFiles]:
    ca = trustme.CA(organization_name=organization)
    files = _write(directory, stem, organization, ca.cert_pem.bytes(), ca.private_key_pem.bytes())
    return ca, files


def make_pki(directory: Path) -> PKI:
    """Write a fresh PKI into `directory` (created if needed) and return its paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_files = _ca(directory, "ca", "syslogkit test CA")
    other, other_files = _ca(directory, "other-ca", "syslogkit other CA")
    return PKI(
        ca=ca_files,
        server=_issue(ca, directory, "server", SERVER_NAMES),
        client=_issue(ca, directory, "client", (CLIENT_NAME,)),
        client2=_issue(ca, directory, "client2", (CLIENT2_NAME,)),
        other_ca=other_files,
        other_server=_issue(other, directory, "other-server", SERVER_NAMES),
        other_client=_issue(other, directory, "other-client", (CLIENT_NAME,)),
    )


def client_context(
    ca: Path, cert: CertFiles | None = None, server_hostname_check: bool = True
) -> ssl.SSLContext:
    """A client SSLContext trusting `ca`, presenting `cert` when given (TLS 1.2 minimum)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = server_hostname_check
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx
