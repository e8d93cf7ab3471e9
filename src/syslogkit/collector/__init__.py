"""The syslogkit collector: listeners (UDP, TCP, TLS, RELP), sinks, and the SQLite store.

```python
from syslogkit.collector import Collector, SQLiteSink

collector = Collector(["udp://127.0.0.1:5514", "tcp://127.0.0.1:5514"], [SQLiteSink("syslog.db")])
await collector.start()
...
await collector.stop()       # drains and commits everything received
```

`syslogkit collect` runs one from the command line; `syslogkit tail` and `syslogkit query` read
its store (`Store`, `Filters`).

The map: `config` (listen URLs, limits, zones), `sources/` (stream, relp, udp listeners),
`decode` (bytes -> `Record`, counted: the one place), `record` (the record and its JSON form),
`pipeline` (the writer thread), `routes` (which sinks a record goes to), `sinks/` (sqlite,
jsonl, stdout, forward, file), `store/` (schema, query, the store, its writer process),
`render` (lines for a person), `stats`, `server` (`Collector`, which wires them),
`configfile` (the TOML config file), `systemd` (readiness, socket activation, privileges).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syslogkit.transports.tls import ServerTLSConfig, fingerprint

    from .config import Limits, ListenAddress, parse_listen_url, zone_of
    from .decode import Decoder, parse_frame
    from .pipeline import Pipeline
    from .record import NOTED, PARSED, UNPARSED, Record, record_to_dict
    from .render import format_human
    from .server import Collector, CollectorThread, TLSConfig
    from .sinks import ForwardSink, JsonLinesSink, Sink, SQLiteSink, StdoutSink
    from .store import Filters, Store, StoreError

#: where each name lives: imported when first asked for, so that reading a store (`syslogkit
#: query`, `tail`) does not import the listeners, the forwarding sink and their transports
#: (about 60 ms of the command's start-up)
_HOMES = {
    "ServerTLSConfig": "syslogkit.transports.tls",
    "fingerprint": "syslogkit.transports.tls",
    **dict.fromkeys(("Limits", "ListenAddress", "parse_listen_url", "zone_of"), ".config"),
    **dict.fromkeys(("Decoder", "parse_frame"), ".decode"),
    "Pipeline": ".pipeline",
    **dict.fromkeys(("NOTED", "PARSED", "UNPARSED", "Record", "record_to_dict"), ".record"),
    "format_human": ".render",
    **dict.fromkeys(("Collector", "CollectorThread", "TLSConfig"), ".server"),
    **dict.fromkeys(("ForwardSink", "JsonLinesSink", "Sink", "SQLiteSink", "StdoutSink"), ".sinks"),
    **dict.fromkeys(("Filters", "Store", "StoreError"), ".store"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "NOTED",
    "PARSED",
    "UNPARSED",
    "Collector",
    "CollectorThread",
    "Decoder",
    "Filters",
    "ForwardSink",
    "JsonLinesSink",
    "Limits",
    "ListenAddress",
    "Pipeline",
    "Record",
    "SQLiteSink",
    "ServerTLSConfig",
    "Sink",
    "StdoutSink",
    "Store",
    "StoreError",
    "TLSConfig",
    "fingerprint",
    "format_human",
    "parse_frame",
    "parse_listen_url",
    "record_to_dict",
    "zone_of",
]
