"""Who may read the logs: the listening rule, the token, and the headers every answer carries.

Decisions (log messages are written by whoever can reach the collector, and read here):

- Loopback by default. Listening anywhere else needs a token; without one the server refuses to
  start (`check_exposure`), with one line saying why.
- With a token, every request is checked, the event stream and static files included. A client
  presents it as `Authorization: Bearer TOKEN`, or once as `?token=TOKEN` on the page (answered
  with a redirect that drops it from the address bar and sets an HttpOnly, SameSite=Strict
  cookie the page and its event stream then send). Compared in constant time.
- Without a token (loopback only), the Host header must name a loopback host: a web page on
  another site cannot read the logs through a DNS name rebound to 127.0.0.1.
- A strict Content-Security-Policy: scripts and styles only from this server's static folder
  (no inline script), no frames, no plugins, requests only to this origin.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from http.cookies import SimpleCookie

__all__ = [
    "COOKIE",
    "HEADERS",
    "ExposureError",
    "check_exposure",
    "host_is_loopback",
    "token_matches",
]

COOKIE = "syslogkit_token"

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


class ExposureError(ValueError):
    """Listening there would show the logs to others without a token."""


def host_is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1 (brackets allowed)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse (`ExposureError`, one line) to listen beyond loopback without a token."""
    if token is not None and len(token) < 16:
        raise ExposureError("the token is too short: use at least 16 characters")
    if not host_is_loopback(host) and not token:
        raise ExposureError(
            f"refusing to listen on {host} without --token or --token-file: "
            "anyone who can reach it could read the logs (listen on 127.0.0.1, or set a token)"
        )


def token_matches(
    expected: str,
    *,
    authorization: str | None,
    cookie_header: str | None,
    query_token: str | None,
) -> bool:
    """Whether the request presents `expected` (header, cookie or query), in constant time."""
    candidates: list[str] = []
    if authorization and authorization[:7].lower() == "bearer ":
        candidates.append(authorization[7:].strip())
    if cookie_header:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except Exception:  # a malformed cookie header is no token
            jar = SimpleCookie()
        if COOKIE in jar:
            candidates.append(jar[COOKIE].value)
    if query_token is not None:
        candidates.append(query_token)
    wanted = expected.encode()
    return any(hmac.compare_digest(c.encode(), wanted) for c in candidates)


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
