"""Who may read the logs: the listening rule, the token, the session cookie, and the headers
every answer carries.

Decisions (log messages are written by whoever can reach the collector, and read here):

- Loopback by default. Listening anywhere else needs a token; without one the server refuses to
  start (`check_exposure`), with one line saying why. A name counts as loopback only when every
  address it resolves to is a loopback address (`foo.localhost` in `/etc/hosts` may say
  otherwise); the server binds the address checked, not the name again.
- Tokens: at least 16 characters and about 96 bits by a simple estimate (`token_bits`); one
  character repeated, `abab...` and the like are refused. `new_token()` makes a good one.
- With a token, every request is checked, the event stream and static files included. A client
  presents it as `Authorization: Bearer TOKEN`, or once as `?token=TOKEN` on the page `/` only
  (answered with a redirect that drops it from the address bar). The browser then holds a
  *session* cookie, never the token: `EXPIRY.HMAC(key, EXPIRY)` with a key derived from the
  token (`Sessions`), valid `SESSION_TTL` seconds, HttpOnly, SameSite=Strict, `Secure` under
  TLS, named after the port (`syslogkit_session_8514`: cookies ignore ports, so two servers on
  one host keep theirs apart). A session value is not accepted as a bearer token. Changing the
  token ends every session. Compared in constant time.
- The Cookie header is split by hand (`cookie_values`): another application's cookie with
  quotes, spaces, braces, backslashes or non-ASCII never hides ours (the standard library's
  `SimpleCookie` stops at the first such cookie).
- Without a token (loopback only), the Host header must name a loopback host: a web page on
  another site cannot read the logs through a DNS name rebound to 127.0.0.1.
- A strict Content-Security-Policy: scripts and styles only from this server's static folder
  (no inline script), no frames, no plugins, requests only to this origin.
- Beyond loopback without TLS the token travels in clear: `cleartext_warning` is the one line
  said at start.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "HEADERS",
    "MIN_TOKEN_BITS",
    "SESSION_TTL",
    "ExposureError",
    "Sessions",
    "check_exposure",
    "cleartext_warning",
    "cookie_name",
    "cookie_values",
    "host_is_loopback",
    "new_token",
    "resolve_host",
    "token_bits",
    "token_matches",
]

#: how long a session cookie lets a browser in (seconds)
SESSION_TTL = 12 * 3600
MIN_TOKEN_LENGTH = 16
MIN_TOKEN_BITS = 96

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self';"
    " frame-ancestors 'none'"
)
#: sent with every answer
HEADERS: Mapping[str, str] = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}

Resolver = Callable[[str], Sequence[str]]


class ExposureError(ValueError):
    """Listening there would show the logs to others without a token."""


# -- where it listens -------------------------------------------------------------------------


def host_is_loopback(host: str) -> bool:
    """By name alone: `localhost`, `*.localhost`, 127.0.0.0/8 or ::1 (brackets allowed).
    Right for a Host header (browsers resolve `.localhost` to loopback themselves), not for
    where to listen (`check_exposure` resolves)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def resolve_host(host: str) -> list[str]:
    """The addresses `host` stands for (an address stands for itself), in resolver order."""
    name = host.strip().strip("[]")
    try:
        return [str(ipaddress.ip_address(name))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ExposureError(f"cannot resolve {name}: {exc}") from None
    found: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        if address not in found:
            found.append(address)
    return found


def check_exposure(host: str, token: str | None, *, resolve: Resolver = resolve_host) -> list[str]:
    """Refuse (`ExposureError`, one line) to listen beyond loopback without a token, or with a
    weak one; returns the addresses `host` resolves to (bind the first)."""
    if token is not None:
        check_token(token)
    addresses = list(resolve(host))
    if not addresses:
        raise ExposureError(f"{host} resolves to no address")
    outside = [a for a in addresses if not ipaddress.ip_address(a).is_loopback]
    if outside and not token:
        where = host if outside == [host.strip("[]")] else f"{host} ({', '.join(outside)})"
        raise ExposureError(
            f"refusing to listen on {where} without --token or --token-file: "
            "anyone who can reach it could read the logs (listen on 127.0.0.1, or set a token)"
        )
    return addresses


def cleartext_warning(addresses: Sequence[str], tls: bool) -> str | None:
    """The one line to say at start when the token would cross a network in clear."""
    if tls or all(ipaddress.ip_address(a).is_loopback for a in addresses):
        return None
    return (
        "warning: serving HTTP beyond loopback: the token and the logs travel in clear "
        "(use --tls-cert/--tls-key, a TLS proxy or an SSH tunnel)"
    )


# -- the token ------------------------------------------------------------------------------------

_CLASSES = (
    ("abcdefghijklmnopqrstuvwxyz", 26),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26),
    ("0123456789", 10),
)


def token_bits(token: str) -> float:
    """A simple estimate of a token's entropy in bits: the character classes it uses give the
    pool (lower 26, upper 26, digits 10, anything else 33), and each character counts unless it
    repeats one of the three before it (so `aaaa`, `abab`, `abcabc` count almost nothing)."""
    pool = sum(size for chars, size in _CLASSES if any(c in chars for c in token))
    if any(not any(c in chars for chars, _ in _CLASSES) for c in token):
        pool += 33
    fresh = sum(1 for i, c in enumerate(token) if c not in token[max(0, i - 3) : i])
    return fresh * math.log2(pool) if pool > 1 else 0.0


def check_token(token: str) -> None:
    """`ExposureError` for a token that is too short or too easy to guess."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ExposureError(
            f"the token is too short: use at least {MIN_TOKEN_LENGTH} characters"
            " (syslogkit web --new-token FILE makes one)"
        )
    if len(set(token)) == 1 or token_bits(token) < MIN_TOKEN_BITS:
        raise ExposureError(
            f"the token is too easy to guess (about {token_bits(token):.0f} bits, want"
            f" {MIN_TOKEN_BITS}): syslogkit web --new-token FILE makes a good one"
        )


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def cookie_name(port: int | None) -> str:
    """The session cookie's name for a server on `port`."""
    return f"syslogkit_session_{port}" if port else "syslogkit_session"


class Sessions:
    """Session values derived from the token: `EXPIRY.MAC`, MAC = HMAC-SHA256 of the expiry
    under a key derived from the token. Holding one is not holding the token."""

    def __init__(self, token: str, ttl: float = SESSION_TTL) -> None:
        self._key = hmac.new(token.encode(), b"syslogkit web session v1", hashlib.sha256).digest()
        self.ttl = ttl

    def _mac(self, expiry: int) -> str:
        return hmac.new(self._key, str(expiry).encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + self.ttl)
        return f"{expiry}.{self._mac(expiry)}"

    def valid(self, value: str, now: float | None = None) -> bool:
        expiry_text, _, mac = value.partition(".")
        if not (expiry_text.isascii() and expiry_text.isdigit() and len(expiry_text) <= 12):
            return False
        expiry = int(expiry_text)
        if expiry <= (time.time() if now is None else now):
            return False
        return hmac.compare_digest(mac.encode("utf-8", "replace"), self._mac(expiry).encode())


def cookie_values(header: str | None, name: str) -> list[str]:
    """Every value the Cookie header gives `name`, whatever the other cookies hold (split on
    `;`, then on the first `=`; surrounding quotes dropped)."""
    if not header:
        return []
    found = []
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found.append(value)
    return found


def token_matches(
    expected: str,
    sessions: Sessions,
    *,
    authorization: str | None,
    cookie_header: str | None,
    cookie: str,
    now: float | None = None,
) -> bool:
    """Whether the request presents the token (`Authorization: Bearer`) or a valid session
    cookie named `cookie`; constant-time comparisons."""
    if authorization and authorization[:7].lower() == "bearer ":
        presented = authorization[7:].strip().encode("utf-8", "replace")
        if hmac.compare_digest(presented, expected.encode()):
            return True
    return any(sessions.valid(value, now) for value in cookie_values(cookie_header, cookie))


def query_token_matches(expected: str, presented: str) -> bool:
    """The `?token=` of the page, in constant time."""
    return hmac.compare_digest(presented.encode("utf-8", "replace"), expected.encode())


def host_header_is_loopback(host_header: str | None) -> bool:
    """The request's Host (with or without a port) names a loopback host."""
    if not host_header:
        return False
    host = host_header.strip()
    if host.startswith("["):
        host = host[: host.find("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host_is_loopback(host)
