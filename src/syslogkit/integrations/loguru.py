"""A loguru sink that sends through a SyslogHandler: loguru's `extra` becomes structured data.

```python
from loguru import logger
from syslogkit import SyslogHandler
from syslogkit.integrations.loguru import SyslogSink

sink = SyslogSink(SyslogHandler("tcp://127.0.0.1:5514", app_name="shop"))
logger.add(sink, level="INFO")
logger.bind(order_id=42).success("order placed")
# <13>1 ... shop 1234 - [loguru@32473 order_id="42"] order placed
```

Each loguru record becomes a `logging.LogRecord` (name, level number and name, file, line,
function, time, process, thread) with one SD element `sd_id` holding `record["extra"]` (keys
sanitised to SD-NAMEs, values as text), and is handed to the handler: the handler's level,
filters and formatter apply as for any record.

- Severity follows the level number, through the handler's one mapping: TRACE and DEBUG debug,
  INFO info, SUCCESS (25) notice, WARNING warning, ERROR err, CRITICAL crit; custom levels by
  range.
- MSG is the bare message (`record["message"]`; syslog's header already has the time, level and
  process); an exception (`logger.exception`, `logger.opt(exception=...)`) is appended by the
  handler's formatter, as for a stdlib record. With `formatted=True` MSG is loguru's formatted
  text instead (the `format` given to `logger.add`, which then includes the traceback).
- With `overrides=("msgid", ...)`, those `extra` keys set the record's MSGID, facility, severity
  or additional structured data instead of becoming parameters.

loguru calls the sink in the logging thread (or in its own thread with `enqueue=True`); the
handler's delivery decides whether that waits on the network (background delivery does not).
Removing the sink from loguru does not close the handler: `sink.close()` does (or
`logging.shutdown()` at exit, like every logging handler). loguru is not needed to import this
module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from syslogkit.codec.message import SDElement, coerce_sd
from syslogkit.integrations import check_overrides, check_sd_id, sd_element, to_text

if TYPE_CHECKING:
    from loguru import Message, Record

__all__ = ["DEFAULT_SD_ID", "SyslogSink"]

#: The default SD-ID of the `extra` element (32473 is the example enterprise number of
#: RFC 5612; use your own for production data that others read).
DEFAULT_SD_ID: Final = "loguru@32473"


class SyslogSink:
    """A loguru sink (`logger.add(SyslogSink(handler))`) writing to a logging handler.

    `handler` is usually a `SyslogHandler` (any `logging.Handler` works, without the SD).
    `sd_id`: the SD-ID of the element made of `extra`; `exclude`: `extra` keys left out;
    `overrides`: `extra` keys that set header fields instead (see the module docstring);
    `text`: how a value becomes SD-PARAM text; `formatted`: MSG is loguru's formatted text.
    """

    def __init__(
        self,
        handler: logging.Handler,
        *,
        sd_id: str = DEFAULT_SD_ID,
        exclude: Iterable[str] = (),
        overrides: Iterable[str] = (),
        text: Callable[[Any], str] = to_text,
        formatted: bool = False,
    ) -> None:
        self.handler = handler
        self.sd_id = check_sd_id(sd_id)
        self.overrides = check_overrides(overrides)
        self.exclude = frozenset(exclude)
        self.text = text
        self.formatted = bool(formatted)
        self._out = self.exclude.union(self.overrides)

    def __call__(self, message: Message) -> None:
        """Hand one loguru message to the handler. Never raises."""
        try:
            record = self.to_record(message)
        except Exception:
            self.handler.handleError(_failed(message))
            return
        if record.levelno >= self.handler.level:
            self.handler.handle(record)

    def to_record(self, message: Message) -> logging.LogRecord:
        """The `logging.LogRecord` for a loguru message (with `structured_data` and overrides)."""
        data: Record = message.record
        exc_info = None
        if self.formatted:
            text = str(message).rstrip("\n")
        else:
            text = data["message"]
            exc = data["exception"]
            if exc is not None and exc.type is not None and exc.value is not None:
                exc_info = (exc.type, exc.value, exc.traceback)
        level = data["level"]
        record = logging.LogRecord(
            data["name"] or "",
            level.no,
            data["file"].path,
            data["line"],
            text,
            (),
            exc_info,
            data["function"],
        )
        created = data["time"].timestamp()
        record.created = created
        record.msecs = (created - int(created)) * 1000
        record.relativeCreated = data["elapsed"].total_seconds() * 1000
        record.levelname = level.name
        record.module = data["module"]
        record.process = data["process"].id
        record.processName = data["process"].name
        record.thread = data["thread"].id
        record.threadName = data["thread"].name
        self._add_extra(record, data["extra"])
        return record

    def close(self, timeout: float | None = None) -> None:
        """Close the handler (a SyslogHandler waits at most `timeout` seconds)."""
        close: Callable[..., None] = self.handler.close
        if timeout is None:
            close()
        else:
            close(timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.handler!r}, sd_id={self.sd_id!r})"

    def _add_extra(self, record: logging.LogRecord, extra: dict[Any, Any]) -> None:
        """`extra` as the record's `structured_data`, and the override fields."""
        out = self._out
        own: tuple[SDElement, ...] = ()
        fields = record.__dict__
        for key in self.overrides:
            if key not in extra:
                continue
            if key != "structured_data":
                fields[key] = extra[key]
                continue
            try:
                own = coerce_sd(extra[key])
            except (TypeError, ValueError, AttributeError):
                out = out.difference((key,))  # not structured data: kept as a parameter
        element = sd_element(self.sd_id, extra, exclude=out, text=self.text)
        sd = own if element is None else (*own, element)
        if sd:
            fields["structured_data"] = sd


def _failed(message: object) -> logging.LogRecord:
    """A stand-in record for handleError when a loguru message could not be converted."""
    return logging.LogRecord("syslogkit.loguru", logging.ERROR, "", 0, to_text(message), (), None)
