"""Integrations with other logging libraries, one module each, imported on demand.

- `syslogkit.integrations.structlog`: `SyslogProcessor`, the last processor of a structlog chain
  on top of `logging`; the event dict becomes an RFC 5424 SD element.
- `syslogkit.integrations.loguru`: `SyslogSink`, a loguru sink that hands records to a
  `SyslogHandler`; loguru's `extra` becomes an SD element.

Neither structlog nor loguru is a dependency of syslogkit: only the module named after one needs
it, and only for type checking. This package holds what both share: how keys and values of a
mapping become an SD element (`sd_element`), and which keys set header fields instead
(`overrides`, the handler's per-record `extra` fields).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

from syslogkit.codec.message import LIMITS, SDElement
from syslogkit.sender.encode import OVERRIDES

__all__ = [
    "OVERRIDE_FIELDS",
    "check_overrides",
    "check_sd_id",
    "sd_element",
    "sd_name",
    "to_text",
]

#: Keys that may be taken out of an event dict or `extra` to set the record's header fields
#: (the handler's per-record overrides) instead of becoming SD parameters.
OVERRIDE_FIELDS: Final = OVERRIDES

_SD_NAME_MAX: Final = LIMITS["sd_name"]
_SD_NAME_BAD: Final = frozenset('= ]"')
_names: dict[str, str] = {}


def _name_ok(text: str) -> bool:
    return 0 < len(text) <= _SD_NAME_MAX and all(
        "!" <= c <= "~" and c not in _SD_NAME_BAD for c in text
    )


def sd_name(key: object) -> str:
    """A key as an RFC 5424 SD-NAME: printable US-ASCII without `= ] "` and space, 1..32.

    Other characters become `_`, longer names are cut, an empty one is `_`.
    """
    text = key if isinstance(key, str) else str(key)
    done = _names.get(text)
    if done is not None:
        return done
    clean = "".join(c if "!" <= c <= "~" and c not in _SD_NAME_BAD else "_" for c in text)
    clean = clean[:_SD_NAME_MAX] or "_"
    if len(_names) < 4096:  # key vocabularies are small; the bound guards against abuse
        _names[text] = clean
    return clean


def check_sd_id(sd_id: str) -> str:
    """`sd_id` when it is a valid SD-ID (an SD-NAME, e.g. `name@32473`), else ValueError."""
    if not isinstance(sd_id, str) or not _name_ok(sd_id):
        raise ValueError(
            f"SD-ID must be 1-{_SD_NAME_MAX} printable US-ASCII characters without "
            f"'=', ']', '\"' or space (e.g. 'app@32473'), not {sd_id!r}"
        )
    return sd_id


def check_overrides(overrides: Iterable[str]) -> frozenset[str]:
    """The set of override keys, each one of OVERRIDE_FIELDS, else ValueError."""
    chosen = frozenset(overrides)
    unknown = sorted(chosen.difference(OVERRIDE_FIELDS))
    if unknown:
        raise ValueError(f"overrides must be among {OVERRIDE_FIELDS}, not {unknown}")
    return chosen


def to_text(value: object) -> str:
    """An SD-PARAM value: str as is, bytes decoded (UTF-8, replacement), else `str(value)`.

    A value whose `__str__` fails becomes `<unprintable TYPE>`: logging must not raise.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def sd_element(
    sd_id: str,
    items: Mapping[Any, Any],
    *,
    exclude: Collection[str] = (),
    text: Callable[[Any], str] = to_text,
) -> SDElement | None:
    """One SD element holding a mapping's keys (as SD-NAMEs) and values (as text), in order.

    Keys in `exclude` are left out; None when nothing is left. Two keys that sanitise to the
    same SD-NAME are both kept (a PARAM-NAME may repeat in an SD element).
    """
    params = tuple(
        (sd_name(key), _value_text(text, value))
        for key, value in items.items()
        if key not in exclude
    )
    return SDElement(sd_id, params) if params else None


def _value_text(text: Callable[[Any], str], value: object) -> str:
    if text is not to_text:
        try:
            result = text(value)
        except Exception:
            return to_text(value)
        if isinstance(result, str):
            return result
        value = result
    return to_text(value)
