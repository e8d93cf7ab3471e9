"""NATS JetStream between collectors: the edge publishes what it receives, stores consume it.

```
apps -> edge collectors (JetStreamSink) -> stream SYSLOG (replicated) -> stores (JetStreamSource)
```

`JetStreamSink` is a sink like the others (`syslogkit collect --nats URL`), `JetStreamSource`
a listener (`syslogkit collect -l nats://URL`), `ensure_stream` creates or updates the stream
(`syslogkit nats init`). `nats-py` (the `[nats]` extra) is imported only when one of them is
used. See docs/scale-out.md for what is guaranteed at each hop.
"""

from .connect import NatsOptions, NatsUnavailable, redact, require_nats, server_urls
from .sink import JetStreamSink
from .source import DEFAULT_DURABLE, JetStreamSource, store_check
from .stream import DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, StreamSettings, ensure_stream

__all__ = [
    "DEFAULT_DURABLE",
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT_PREFIX",
    "JetStreamSink",
    "JetStreamSource",
    "NatsOptions",
    "NatsUnavailable",
    "StreamSettings",
    "ensure_stream",
    "is_nats_url",
    "redact",
    "require_nats",
    "server_urls",
    "store_check",
]


def is_nats_url(url: object) -> bool:
    """A `-l` URL that names a NATS source (`nats://`, `nats+tls://`)."""
    return isinstance(url, str) and url.lower().startswith(("nats://", "nats+tls://"))
