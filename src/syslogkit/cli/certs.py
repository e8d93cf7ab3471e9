"""`syslogkit certs`: a CA, a server certificate and client certificates for mutual TLS."""

from __future__ import annotations

import argparse

from syslogkit.cli.main import CliError

EXAMPLES = """examples:
  syslogkit certs --out pki/
  syslogkit certs --out pki/ --server-name logs.example.com --server-name 10.1.2.3 \\
                  --client web1 --client web2

Then, on the collector:
  syslogkit collect --listen tls://0.0.0.0:6514 --tls-cert pki/server.pem \\
      --tls-key pki/server-key.pem --tls-ca pki/ca.pem --client-cert required
and in the application:
  SyslogHandler("tls://logs.example.com:6514", ca_file="pki/ca.pem",
                cert_file="pki/web1.pem", key_file="pki/web1-key.pem")"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syslogkit certs",
        description="Write a CA, a server certificate and client certificates as PEM files "
        "(keys readable by the owner only) and print each certificate's fingerprints.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="folder to write the PEM files into")
    parser.add_argument(
        "--server-name",
        action="append",
        metavar="NAME",
        help="a DNS name or IP address for the server certificate (repeatable; "
        "default: localhost, 127.0.0.1, ::1)",
    )
    parser.add_argument(
        "--client",
        action="append",
        metavar="NAME",
        help="a client certificate to make (repeatable; default: one named 'client')",
    )
    parser.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    return parser


def certs_main(argv: list[str]) -> int:
    """Entry point of `syslogkit certs`."""
    args = _parser().parse_args(argv)
    from syslogkit.cli.pki import require_cryptography, write_pki

    try:
        require_cryptography()
        pki = write_pki(
            args.out, server_names=args.server_name, clients=args.client, days=args.days
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    for paths in [pki.ca, *pki.servers, *pki.clients]:
        prints = paths.fingerprints()
        print(f"{paths.name}: {paths.cert}  (key {paths.key})")
        print(f"  {prints['sha256-rfc5425']}")
        print(f"  {prints['sha256-rsyslog']}")
    return 0
