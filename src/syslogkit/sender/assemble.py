"""The handler's options -> format settings, transport and delivery: every option decided once.

`SyslogHandler.__init__` calls these in order: the delivery kind and its options are checked
against the address, the format settings (`rfc`, `max_size`, `bom`) take their defaults from
the transport, and `build_transport` makes one transport per address (TLS settings for the
TLS schemes, a failover list for more than one) that `make_delivery` wraps.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypedDict, Union

from syslogkit.delivery.base import Delivery, ErrorReporter, Stats
from syslogkit.delivery.sync import SyncDelivery
from syslogkit.transports.address import Address
from syslogkit.transports.backoff import Backoff
from syslogkit.transports.base import Transport
from syslogkit.transports.failover import FailoverTransport
from syslogkit.transports.schemes import SCHEMES, make_transport
from syslogkit.transports.tls import TLSConfig

__all__ = [
    "SizeOption",
    "TLSOptions",
    "background_options",
    "build_transport",
    "coerce_bom",
    "coerce_max_size",
    "coerce_rfc",
    "default_max_size",
    "delivery_kind",
    "make_delivery",
]

SizeOption = Union[int, str, None]  # noqa: UP007 (a runtime alias on Python 3.10)


class TLSOptions(TypedDict):
    """The handler's TLS keywords, as `TLSConfig.create` takes them."""

    ca_file: str | None
    ca_dir: str | None
    cert_file: str | None
    key_file: str | None
    key_password: str | None
    server_hostname: str | None
    verify_hostname: bool
    fingerprint: str | Iterable[str] | None
    ssl_context: ssl.SSLContext | None
    confirm_timeout: float


#: the handler's `shed_below` past the queue's high-water mark (issue 11: keep what matters)
SHED_BELOW_DEFAULT: Final = "warning"


def delivery_kind(
    kind: str | None,
    address: Address,
    options: dict[str, Any],
    shed_below: int | str | bool | None = False,
) -> str:
    """The delivery for an address: DESIGN.md's default (background on the network, in the
    caller on unix sockets) unless asked; RELP and background options need background.

    Background delivery gets `shed_below` in `options`: the one given (None: no shedding), else
    `SHED_BELOW_DEFAULT`; `False` means the handler was not given one.
    """
    if kind is None:
        kind = "sync" if address.is_unix else "background"
    if shed_below is not False:
        options["shed_below"] = shed_below
    if SCHEMES[address.scheme].relp and kind != "background":
        raise ValueError("RELP needs delivery='background' (acknowledgements are read there)")
    if options and kind != "background":
        raise ValueError(f"{', '.join(options)}: only with delivery='background'")
    if kind == "background":
        options.setdefault("shed_below", SHED_BELOW_DEFAULT)
    return kind


def background_options(
    *, delivery_options: Mapping[str, Any] | None, **options: object
) -> dict[str, Any]:
    """The background delivery's options: the handler's keywords over `delivery_options`."""
    merged = dict(delivery_options or {})
    merged.update((key, value) for key, value in options.items() if value is not None)
    return merged


def coerce_rfc(rfc: str | int | None, address: Address) -> tuple[str, bool]:
    """('5424' | '3164', omit_hostname) from the option and the transport."""
    if rfc is None:
        return ("3164", True) if address.is_unix else ("5424", False)
    text = str(rfc).strip().lower().removeprefix("rfc")
    if text == "local":
        return "3164", True
    if text not in ("5424", "3164"):
        raise ValueError(f"rfc must be '5424', '3164' or 'local', not {rfc!r}")
    return text, text == "3164" and address.is_unix


def default_max_size(rfc: str, address: Address) -> int:
    """DESIGN.md: 2048 for RFC 5424 over UDP, 1024 for RFC 3164 over UDP, else 8192."""
    if address.scheme == "udp":
        return 2048 if rfc == "5424" else 1024
    return 8192


def coerce_max_size(value: SizeOption, rfc: str, address: Address) -> int | None:
    """None, "auto" (the default for the format and transport), or a byte limit >= 64."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in ("auto", "default"):
            return default_max_size(rfc, address)
        if value.strip().lower() == "none":
            return None
        value = int(value)
    if isinstance(value, bool) or value < 64:
        raise ValueError(f"max_size must be None, 'auto' or an int >= 64, not {value!r}")
    return value


def coerce_bom(value: bool | str) -> bool | str:
    """ "auto", True or False, also from the strings dictConfig and ini files give."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"bom must be 'auto', True or False, not {value!r}")


def check_failover(addresses: Sequence[Address]) -> None:
    """More addresses are tried in turn: same scheme, and streams only."""
    first = addresses[0]
    if any(a.scheme != first.scheme for a in addresses):
        raise ValueError("failover addresses must use the scheme of the first address")
    if len(addresses) > 1 and not first.is_stream:
        raise ValueError("failover needs stream addresses (tcp, tls, relp, unix+stream)")


def build_transport(
    addresses: Sequence[Address],
    *,
    timeout: float,
    backoff_initial: float,
    backoff_max: float,
    relp_window: int,
    tls: TLSOptions,
) -> Transport:
    """One transport per address (each with its own backoff and, for TLS schemes, TLS settings
    checked against its host), behind a failover list when there is more than one."""
    check_failover(addresses)
    transports = [
        make_transport(
            where,
            timeout=timeout,
            backoff=Backoff(backoff_initial, backoff_max),
            tls=TLSConfig.create(where.host, **tls) if SCHEMES[where.scheme].tls else None,
            window=relp_window,
        )
        for where in addresses
    ]
    return transports[0] if len(transports) == 1 else FailoverTransport(transports)


def make_delivery(
    kind: str,
    transport: Transport,
    stats: Stats,
    report: ErrorReporter | None = None,
    **options: Any,
) -> Delivery:
    """The delivery named by the handler's `delivery` option: `"sync"` or `"background"`.

    `options` go to the delivery's constructor (background: queue_size, overflow, spool_dir...).
    """
    if kind == "sync":
        if options:
            raise ValueError(f"sync delivery takes no options: {sorted(options)}")
        return SyncDelivery(transport, stats=stats, report=report)
    if kind == "background":
        from syslogkit.delivery.background import BackgroundDelivery

        options.setdefault("timeout", transport.timeout)
        return BackgroundDelivery(transport, stats=stats, report=report, **options)
    raise ValueError(f"unknown delivery {kind!r}: 'sync' or 'background'")
