"""Real syslog peers for interop, fault and collector tests (see rsyslog.py, syslogng.py,
certs.py, ports.py).

Tests import from here (`from peers import RsyslogPeer, TLS`); pytest puts `tests/` on sys.path
because `tests/conftest.py` sits there without an `__init__.py`.

The skip/fail policy (`Need`, given to tests as the `need` fixture): a test whose real peer
(rsyslogd, one of its modules, logger(1)) is not installed is skipped with the reason, except
under CI=true, where it fails: CI never passes by skipping the real thing.
"""

from __future__ import annotations

import os
import shutil

import pytest

from .certs import PKI, CertFiles, client_context, fingerprint, make_pki
from .ports import free_port, free_ports
from .rsyslog import (
    RELP,
    TCP,
    TLS,
    UDP,
    PeerError,
    RsyslogFactory,
    RsyslogPeer,
    UxSock,
    missing,
)
from .syslogng import SyslogNgPeer, SyslogNgTLS, missing_syslog_ng


def in_ci() -> bool:
    """True when the CI variable says this is CI (CI=true, as `.ci/run` sets it)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


class Need:
    """`need(ok, reason)`, `need.rsyslog(*modules)`, `need.logger()`: skip, or fail under CI."""

    def __call__(self, ok: bool, reason: str) -> None:
        if ok:
            return
        if in_ci():
            pytest.fail(f"{reason} [CI=true: a missing peer fails, never skips]", pytrace=False)
        pytest.skip(reason)

    def rsyslog(self, *modules: str) -> None:
        """rsyslogd and the named modules ("imrelp", "lmnsd_gtls", ...) must be installed."""
        why = missing(modules)
        self(why is None, why or "")

    def syslog_ng(self) -> None:
        """syslog-ng must be runnable (unpacked by .ci/run, or installed)."""
        why = missing_syslog_ng()
        self(why is None, why or "")

    def logger(self) -> str:
        """logger(1) must be installed; returns its path."""
        path = shutil.which("logger") or "/usr/bin/logger"
        self(os.access(path, os.X_OK), "logger(1) is not installed (apt-get install bsdutils)")
        return path


__all__ = [
    "PKI",
    "RELP",
    "TCP",
    "TLS",
    "UDP",
    "CertFiles",
    "Need",
    "PeerError",
    "RsyslogFactory",
    "RsyslogPeer",
    "SyslogNgPeer",
    "SyslogNgTLS",
    "UxSock",
    "client_context",
    "fingerprint",
    "free_port",
    "free_ports",
    "in_ci",
    "make_pki",
    "missing",
    "missing_syslog_ng",
]
