"""`syslogkit certs`: files written, keys private, certificates usable for mutual TLS."""

from __future__ import annotations

import hashlib
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from syslogkit.cli.main import main
from syslogkit.cli.pki import fingerprint


def _make(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "pki"
    assert main(["certs", "--out", str(out), *extra]) == 0
    return out


def test_certs_writes_ca_server_and_named_clients_with_owner_only_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _make(tmp_path, "--client", "web1", "--client", "web2")
    names = {p.name for p in out.iterdir()}
    assert names == {
        "ca.pem", "ca-key.pem", "server.pem", "server-key.pem",
        "web1.pem", "web1-key.pem", "web2.pem", "web2-key.pem",
    }  # fmt: skip
    for key in out.glob("*-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    printed = capsys.readouterr().out
    assert fingerprint((out / "web2.pem").read_bytes()) in printed
    assert fingerprint((out / "server.pem").read_bytes(), style="rsyslog") in printed


def test_printed_fingerprint_matches_the_certificate_a_tls_peer_presents(tmp_path: Path) -> None:
    out = _make(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(out / "server.pem", out / "server-key.pem")
    server_ctx.load_verify_locations(out / "ca.pem")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=str(out / "ca.pem"))
    client_ctx.load_cert_chain(out / "client.pem", out / "client-key.pem")

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            seen["client_subject"] = tls.getpeercert()["subject"]  # type: ignore[index]
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # noqa: SIM117
        with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.recv(2) == b"ok"
            der = tls.getpeercert(binary_form=True)
    thread.join(5)
    listener.close()
    assert der is not None
    digest = hashlib.sha256(der).hexdigest().upper()
    assert fingerprint((out / "server.pem").read_bytes()).replace(":", "") == "sha-256" + digest
    assert (("commonName", "client"),) in seen["client_subject"]  # type: ignore[operator]


def test_server_certificate_carries_requested_names_and_ips(tmp_path: Path) -> None:
    from cryptography import x509

    out = _make(tmp_path, "--server-name", "logs.example.com", "--server-name", "10.1.2.3")
    cert = x509.load_pem_x509_certificate((out / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["logs.example.com"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]


def test_certs_without_cryptography_says_how_to_get_it_in_one_line(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['cryptography'] = None; "
        "from syslogkit.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "certs", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "pip install 'syslogkit[cli]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_certs_refuses_a_client_name_that_would_overwrite_the_ca(tmp_path: Path) -> None:
    assert main(["certs", "--out", str(tmp_path), "--client", "ca"]) == 2
