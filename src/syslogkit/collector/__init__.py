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
"""

from syslogkit.transports.tls import fingerprint

from .record import Record, parse_frame, record_to_dict
from .server import (
    Collector,
    CollectorThread,
    Limits,
    ListenAddress,
    TLSConfig,
    parse_listen_url,
)
from .sinks import (
    ForwardSink,
    JsonLinesSink,
    Pipeline,
    Sink,
    SQLiteSink,
    StdoutSink,
    format_human,
)
from .store import Filters, Store, StoreError

__all__ = [
    "Collector",
    "CollectorThread",
    "Filters",
    "ForwardSink",
    "JsonLinesSink",
    "Limits",
    "ListenAddress",
    "Pipeline",
    "Record",
    "SQLiteSink",
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
]
