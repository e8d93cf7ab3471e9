"""structlog on top of `logging`, into a SyslogHandler: the event dict becomes structured data.

```python
import logging
import structlog
from syslogkit import SyslogHandler
from syslogkit.integrations.structlog import SyslogProcessor

logging.getLogger().addHandler(SyslogHandler("tcp://127.0.0.1:5514", app_name="shop"))
logging.getLogger().setLevel(logging.INFO)
structlog.configure(
    processors=[structlog.stdlib.filter_by_level, SyslogProcessor()],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
)
structlog.get_logger("orders").info("order placed", order_id=42, name="espresso")
# <14>1 ... shop 1234 - [structlog@32473 order_id="42" name="espresso"] order placed
```

`SyslogProcessor` is the last processor (in place of `render_to_log_kwargs`). It hands the
stdlib logger the event as the message and the other keys as one SD element, passed in the
record's `structured_data` field. Since no key of the event dict becomes an attribute of the
`LogRecord`, keys that `logging` reserves (`name`, `msg`, `args`, `levelname`, `process`,
`message`, ...) never raise; they are SD parameters like any other.

Keys with a meaning:

- `event`: MSG (formatted with `positional_args` the way `logging` does, when there are some);
- `exc_info` (True, an exception, or an exc_info tuple), `stack_info`, `stacklevel`: passed to
  `logging`, whose formatter appends the traceback to MSG; `exception` and `stack` (the text
  that `structlog.processors.format_exc_info` / `StackInfoRenderer` make) are appended to MSG;
- structlog's internal keys (`_record`, `_from_structlog`, `_logger`, `_name`) are left out;
- with `overrides=("msgid", ...)`, those keys set the record's MSGID, facility, severity or
  extra structured data instead of becoming parameters.

structlog is not needed to import this module; it only describes the processor protocol.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from syslogkit.codec.message import SDElement, coerce_sd
from syslogkit.integrations import (
    check_overrides,
    check_sd_id,
    sd_element,
    to_text,
)

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

__all__ = ["DEFAULT_SD_ID", "SyslogProcessor", "structured_data_from_event_dict"]

#: The default SD-ID of the event dict's element (32473 is the example enterprise number of
#: RFC 5612; use your own for production data that others read).
DEFAULT_SD_ID: Final = "structlog@32473"

#: Keys handed to `logging` as keyword arguments rather than as data.
_LOGGING_KWARGS: Final = ("exc_info", "stack_info", "stacklevel")
#: Keys structlog's stdlib integration uses for itself.
_INTERNAL: Final = ("_record", "_from_structlog", "_logger", "_name")
#: Rendered tracebacks and stacks, appended to MSG.
_APPENDED: Final = ("exception", "stack")
_ALWAYS_OUT: Final = frozenset(("event", "positional_args", *_LOGGING_KWARGS, *_INTERNAL))

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | None


def structured_data_from_event_dict(
    event_dict: Mapping[str, Any],
    sd_id: str = DEFAULT_SD_ID,
    *,
    exclude: Iterable[str] = (),
    text: Callable[[Any], str] = to_text,
) -> SDElement | None:
    """The SD element for an event dict: every key but `event`, the keys handed to `logging`,
    structlog's internal ones and `exclude`; None when no key is left.

    Keys are sanitised to SD-NAMEs (other characters become `_`, cut to 32), values made text
    with `text` (default: str as is, bytes decoded, anything else `str()`).
    """
    check_sd_id(sd_id)
    return sd_element(sd_id, event_dict, exclude=_ALWAYS_OUT.union(exclude), text=text)


class SyslogProcessor:
    """structlog's last processor for `structlog.stdlib` loggers writing to a SyslogHandler.

    Returns the keyword arguments of the stdlib logging call: `msg` (the event), `extra`
    (`structured_data` with one SD element `sd_id` holding the other keys, plus the keys named
    in `overrides`) and `exc_info`/`stack_info`/`stacklevel` when the event dict has them.

    `exclude`: keys left out (e.g. `"level"`, since the severity already says it, or
    `"timestamp"`, since the header has one). `text`: how a value becomes SD-PARAM text.
    """

    def __init__(
        self,
        sd_id: str = DEFAULT_SD_ID,
        *,
        exclude: Iterable[str] = (),
        overrides: Iterable[str] = (),
        text: Callable[[Any], str] = to_text,
    ) -> None:
        self.sd_id = check_sd_id(sd_id)
        self.overrides = check_overrides(overrides)
        self.exclude = frozenset(exclude)
        self.text = text
        self._out = _ALWAYS_OUT.union(self.exclude, self.overrides)

    def __call__(
        self, logger: WrappedLogger, method_name: str, event_dict: EventDict
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        out = self._out
        own: tuple[SDElement, ...] = ()
        for key in self.overrides:
            if key not in event_dict:
                continue
            if key != "structured_data":
                extra[key] = event_dict[key]
                continue
            try:
                own = coerce_sd(event_dict[key])
            except (TypeError, ValueError, AttributeError):
                out = out.difference((key,))  # not structured data: kept as a parameter
        appended = [key for key in _APPENDED if isinstance(event_dict.get(key), str)]
        if appended:
            out = out.union(appended)
        element = sd_element(self.sd_id, event_dict, exclude=out, text=self.text)
        sd = own if element is None else (*own, element)
        if sd:
            extra["structured_data"] = sd
        msg = "\n".join([_message(event_dict), *(event_dict[key] for key in appended)])
        kwargs: dict[str, Any] = {"msg": msg, "extra": extra}
        if "exc_info" in event_dict:
            info = _exc_info(event_dict["exc_info"])
            if info is not None:
                kwargs["exc_info"] = info
        if "stack_info" in event_dict:
            kwargs["stack_info"] = bool(event_dict["stack_info"])
        level = event_dict.get("stacklevel")
        if isinstance(level, int) and not isinstance(level, bool) and level >= 1:
            kwargs["stacklevel"] = level
        return kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sd_id!r})"


def _message(event_dict: EventDict) -> str:
    """The event as text, `%`-formatted with `positional_args` the way `logging` does it.

    Arguments that do not fit the format are appended instead of raising.
    """
    event = event_dict.get("event")
    text = "" if event is None else to_text(event)
    args = event_dict.get("positional_args")
    if not args:
        return text
    if not isinstance(args, tuple):
        args = (args,)
    values: Any = args
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        values = args[0]
    try:
        return str(text % values)
    except Exception:
        return " ".join([text, *(to_text(arg) for arg in args)])


def _exc_info(value: object) -> _ExcInfo:
    """An exc_info tuple for `logging`, the way `logging` reads the argument, or None.

    An exception is itself; a 3-tuple starting with an exception type is kept; any other true
    value means the exception being handled (None when there is none, where `logging` would
    print `NoneType: None`).
    """
    if not value:
        return None
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if (
        isinstance(value, tuple)
        and len(value) == 3
        and isinstance(value[0], type)
        and issubclass(value[0], BaseException)
        and isinstance(value[1], BaseException)
        and (value[2] is None or isinstance(value[2], TracebackType))
    ):
        return (value[0], value[1], value[2])
    current = sys.exc_info()
    if current[0] is None or current[1] is None:
        return None
    return (current[0], current[1], current[2])
