"""The sending side: `SyslogHandler` for `logging`, and its asyncio variant in `aio`."""
