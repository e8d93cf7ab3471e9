"""Logging from an asyncio application without the event loop ever waiting on the network.

```python
import asyncio, logging
from syslogkit.sender.aio import AsyncSyslogHandler

async def main() -> None:
    handler = AsyncSyslogHandler("tcp://127.0.0.1:5514", app_name="api")
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("api").warning("slow request path=%s", "/orders")  # never waits
        ...
    finally:
        logging.getLogger().removeHandler(handler)
        await handler.aclose()  # delivers what is queued, waiting in a worker thread

asyncio.run(main())
```

`AsyncSyslogHandler` is a `SyslogHandler` whose delivery is always the background queue, on
every transport (unix sockets included, where a plain handler writes in the caller): a log call
made on the loop formats the record and appends its bytes to a bounded in-memory queue, and
returns. Name resolution, connecting, TLS handshakes, writes, reconnects and the spool all
happen in the handler's writer thread. A full queue follows the handler's rules
(`docs/delivery.md`): with a live collector the call waits for room, at most `block_timeout`
(so the loop may pause that long under overload; `block_timeout=0` never waits and sheds
records below WARNING instead); with a collector known to be down it never waits. Everything
else (options, `extra` fields, `stats`) is the `SyslogHandler`'s.

The waiting methods have awaitable forms that wait in a worker thread: `await aflush()`,
`await aclose()`, and `async with`. The plain `flush()`/`close()` still work (and
`logging.shutdown()` calls them at exit), but block the calling thread up to their timeout.

Why a thread and not asyncio transports: the background writer already owns the connection,
reconnect and backoff, TLS confirmation, RELP acknowledgements, re-sending and the disk spool.
Writing through the loop would repeat all of that, and would make delivery stop whenever the
loop is busy or blocked, which is when its logs matter most.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from syslogkit.sender.handler import SyslogHandler
from syslogkit.transports.address import AddressInput

__all__ = ["AsyncSyslogHandler"]


class AsyncSyslogHandler(SyslogHandler):
    """A SyslogHandler for code on an event loop: `emit()` only formats and enqueues.

    Takes the `SyslogHandler` options; `delivery` can only be `"background"` (the default
    here, whatever the transport). `delivery_options` configure the queue (`queue_size`,
    `overflow`, `spool_dir`, ...).
    """

    def __init__(self, address: AddressInput = None, **options: Any) -> None:
        delivery = options.pop("delivery", None)
        if delivery not in (None, "background"):
            raise ValueError(
                f"AsyncSyslogHandler delivers in the background only, not {delivery!r} "
                "(a synchronous write would block the event loop)"
            )
        super().__init__(address, delivery="background", **options)

    async def aflush(self, timeout: float | None = None) -> None:
        """Wait (bounded, in a worker thread) until queued records are written."""
        await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> None:
        """Deliver what is queued within `timeout` seconds, then close; in a worker thread."""
        await asyncio.to_thread(self.close, timeout)

    async def __aenter__(self) -> AsyncSyslogHandler:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
