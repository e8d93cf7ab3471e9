"""Connecting to NATS: servers, credentials, TLS, and the client's traps handled once.

`nats-py` is imported here, only when a NATS source or sink starts; without the `[nats]` extra
the error says in one line what to install. What the client does by default and we do not want:

- its error callback prints a traceback for every refused connection: ours counts the error
  and keeps its text (with credentials removed) for the stats;
- after a refused first connect it waits `reconnect_time_wait` (2 s) before the next server:
  ours is 0.25 s, and it never gives up (`max_reconnect_attempts=-1`): a collector started
  before its cluster buffers and connects when it can;
- after a failed TLS handshake (a server certificate from another CA, a server that wants a
  client certificate) nats-py 2.16 waits forever for the plain socket to close, so its first
  connect never returns: ours ends that attempt from the error callback and tries again
  (0.25 s doubling to 5 s; a command gives up after 3 attempts with the reason in one line);
- asyncio logs "returning true from eof_received() has no effect when using ssl" when a TLS
  connection of nats-py ends: that one message is filtered out of the `asyncio` logger.

Secrets (a password in a URL, a creds or nkey file's content) are never printed: `redact()`
is applied to every URL and error text that reaches the stats or the terminal.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["NatsOptions", "NatsUnavailable", "redact", "require_nats"]

_SCHEMES = {"nats": "nats", "tls": "tls", "nats+tls": "tls"}
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


_TLS_EOF_WARNING = "returning true from eof_received() has no effect when using ssl"
_FIRST_TLS_ATTEMPTS = 3  # a command (forever=False) gives up after this many TLS failures
_TLS_RETRY_MAX = 5.0


class NatsUnavailable(ImportError):
    """`nats-py` is not installed."""


def require_nats() -> Any:
    """The `nats` package, or `NatsUnavailable` saying which extra to install."""
    try:
        import nats
    except ImportError:
        raise NatsUnavailable("NATS support needs nats-py: pip install 'syslogkit[nats]'") from None
    return nats


def redact(text: str) -> str:
    """`text` with the user:password@ (or token@) of every URL in it replaced by `***@`."""
    return _USERINFO.sub("***@", text)


def server_urls(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """`nats://a:4222,nats://b:4222` (or a list) -> URLs nats-py takes (`nats+tls://` is
    `tls://`); a missing port is 4222."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if "://" not in item:
            item = "nats://" + item
        parts = urlsplit(item)
        scheme = _SCHEMES.get(parts.scheme.lower())
        if scheme is None:
            raise ValueError(
                f"NATS URL {redact(item)!r}: scheme must be nats://, tls:// or nats+tls://"
            )
        if not parts.hostname:
            raise ValueError(f"NATS URL {redact(item)!r}: no host")
        netloc = parts.netloc if parts.port else parts.netloc + ":4222"
        out.append(f"{scheme}://{netloc}")
    if not out:
        raise ValueError("no NATS server URL given")
    return out


@dataclass
class NatsOptions:
    """Where and how to connect.

    `servers`: URLs (`nats://host:4222`, `tls://host:4222`; `user:password@` in a URL works);
    `creds_file`: a `.creds` file (JWT + nkey seed); `nkey_file`: an nkey seed file;
    `token`: a token; `ca_file`: the CA that signed the servers' certificates (TLS then);
    `cert_file`/`key_file`: a client certificate for servers that verify clients.
    """

    servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    creds_file: str | None = None
    nkey_file: str | None = None
    token: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    #: user and password (a config file's `nats.user`, `nats.password_file`)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    name: str = "syslogkit"
    connect_timeout: float = 2.0
    reconnect_wait: float = 0.25
    #: keep trying to connect (a collector); False: give up after a few attempts (a command)
    forever: bool = True

    def __post_init__(self) -> None:
        self.servers = server_urls(self.servers)

    @property
    def tls(self) -> bool:
        return bool(self.ca_file or self.cert_file) or any(
            s.startswith("tls://") for s in self.servers
        )

    def describe(self) -> str:
        """The servers, for a person (no secrets)."""
        return ",".join(redact(s) for s in self.servers)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def connect_kwargs(self, errors: ErrorLog) -> dict[str, Any]:
        """Keyword arguments for `nats.connect` (see the module docstring)."""
        kwargs: dict[str, Any] = {
            "servers": self.servers,
            "name": self.name,
            "error_cb": errors.record,
            "disconnected_cb": errors.disconnected,
            "reconnected_cb": errors.reconnected,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1 if self.forever else 2,
            "reconnect_time_wait": self.reconnect_wait,
            "connect_timeout": self.connect_timeout,
            "ping_interval": 5,
            "max_outstanding_pings": 2,
        }
        context = self.ssl_context()
        if context is not None:
            kwargs["tls"] = context
        if self.creds_file:
            kwargs["user_credentials"] = self.creds_file
        if self.nkey_file:
            kwargs["nkeys_seed"] = self.nkey_file
        if self.token:
            kwargs["token"] = self.token
        if self.user and self.password:
            kwargs["user"], kwargs["password"] = self.user, self.password
        return kwargs


class _TLSRefused(Exception):
    """Ends nats-py's first connect after a TLS failure (it would hang, see the module doc)."""


class _QuietTLSEof(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _TLS_EOF_WARNING


_QUIET_TLS_EOF = _QuietTLSEof()


class ErrorLog:
    """The client's error, disconnect and reconnect callbacks: counted, last text kept
    (redacted), nothing printed."""

    def __init__(self) -> None:
        self.errors = 0
        self.disconnects = 0
        self.reconnects = 0
        self.last_error: str | None = None
        #: the last error that was not a reset socket: the server's reason (an authorization
        #: violation is often followed by a reset on the next attempt); a command prints it
        self.reason: str | None = None
        #: True during the first connect: a TLS failure then ends the attempt (`_TLSRefused`)
        self.connecting = False

    def note(self, text: str) -> None:
        self.errors += 1
        self.last_error = redact(text)

    async def record(self, exc: Exception) -> None:
        self.note(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if not isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            self.reason = self.last_error
        if self.connecting and isinstance(exc, ssl.SSLError):
            raise _TLSRefused(self.last_error)

    async def disconnected(self) -> None:
        self.disconnects += 1

    async def reconnected(self) -> None:
        self.reconnects += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_errors": self.errors,
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }


async def connect(options: NatsOptions, errors: ErrorLog) -> Any:
    """A connected `nats.aio.client.Client` (a collector retries until it connects; a command
    raises `ConnectionError` with the reason in one line, secrets redacted)."""
    nats = require_nats()
    if options.tls:
        logging.getLogger("asyncio").addFilter(_QUIET_TLS_EOF)
    failures = 0
    wait = options.reconnect_wait
    while True:
        errors.connecting = True
        try:
            return await nats.connect(**options.connect_kwargs(errors))
        except _TLSRefused:
            failures += 1
            if not options.forever and failures >= _FIRST_TLS_ATTEMPTS:
                raise ConnectionError(
                    f"cannot connect to {options.describe()}: {errors.reason}"
                ) from None
        except Exception as exc:
            reason = errors.reason or errors.last_error or f"{type(exc).__name__}: {exc}"
            raise ConnectionError(
                f"cannot connect to {options.describe()}: {redact(reason)}"
            ) from None
        finally:
            errors.connecting = False
        await asyncio.sleep(wait)
        wait = min(wait * 2, _TLS_RETRY_MAX)
