"""A header template: `format_5424`'s bytes for many messages that share their static fields.

A sender writes the same HOSTNAME, APP-NAME, PROCID, MSGID and static STRUCTURED-DATA in every
message; only PRI (by severity), TIMESTAMP, MSG and, when the sender numbers its messages, the
`meta sequenceId` change. `HeaderTemplate` formats the static part once, the timestamp text once
per second, and per message joins the pieces in one string format and one encode. Its output is
`format_5424`'s, byte for byte (tested by property); where it could differ (a message over
`max_size`, an empty MSG, text UTF-8 cannot encode, a timestamp that cannot be spliced) it
returns None and the caller formats the message with `format_5424`.

Sans-I/O: the local UTC offset of a moment is asked of the caller's `zone_at`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone, tzinfo
from typing import Final

from syslogkit.codec._rfc3339 import timestamp_parts
from syslogkit.codec.message import Facility, SDElement
from syslogkit.codec.rfc5424.formatting import format_sd, sanitize_field
from syslogkit.codec.rfc5424.grammar import APP_NAME, HOSTNAME, MSGID, PROCID

__all__ = ["SEQUENCE_ID", "HeaderTemplate", "with_sequence_id"]

#: RFC 5424 §7.3.1: the SD-ID and PARAM-NAME of a message's sequence number.
SEQUENCE_ID: Final = ("meta", "sequenceId")

ZoneAt = Callable[[int], tzinfo]


def _utc(seconds: int) -> tzinfo:
    return timezone.utc


def with_sequence_id(sd: tuple[SDElement, ...], number: int) -> tuple[SDElement, ...]:
    """`sd` with `meta sequenceId=number`: the last param of an existing `meta` element (an
    older sequenceId there is replaced), or a new `meta` element at the end."""
    meta, name = SEQUENCE_ID
    for index, element in enumerate(sd):
        if element.id == meta:
            params = tuple(p for p in element.params if p[0] != name)
            merged = SDElement(meta, (*params, (name, str(number))))
            return (*sd[:index], merged, *sd[index + 1 :])
    return (*sd, SDElement(meta, ((name, str(number)),)))


def _sequence_sd_parts(sd: tuple[SDElement, ...]) -> tuple[str, str]:
    """The SD text of `with_sequence_id(sd, n)` around the number, as `format_sd` writes it."""
    meta, name = SEQUENCE_ID
    for index, element in enumerate(sd):
        if element.id == meta:
            params = tuple(p for p in element.params if p[0] != name)
            before = _sd_text(sd[:index]) + format_sd((SDElement(meta, params),))[:-1]
            return f'{before} {name}="', '"]' + _sd_text(sd[index + 1 :])
    return f'{_sd_text(sd)}[{meta} {name}="', '"]'


def _sd_text(sd: tuple[SDElement, ...]) -> str:
    return format_sd(sd) if sd else ""


#: (second, the text before the microseconds per severity, the text after them)
_Second = tuple[int, tuple[str, ...], str]


class HeaderTemplate:
    """`format_5424` for messages with these static fields, rendered from cached text.

    `render(severity, created, text, sequence)` gives the bytes of the message with that
    severity (0..7), the moment `created` (POSIX seconds, shown in the offset `zone_at` gives
    for it; UTC by default), MSG `text`, and with `sequence_id=True` the `meta sequenceId`
    `sequence`, merged into the static SD as `with_sequence_id` does. `version` is 1.
    """

    __slots__ = (
        "_bom",
        "_max_size",
        "_middle",
        "_prefixes",
        "_second",
        "_sequence",
        "_zone",
    )

    def __init__(
        self,
        *,
        facility: Facility | int,
        hostname: str | None,
        app_name: str | None,
        procid: str | None,
        msgid: str | None,
        structured_data: tuple[SDElement, ...] = (),
        sequence_id: bool = False,
        bom: bool | str = "auto",
        max_size: int | None = None,
        zone_at: ZoneAt = _utc,
    ) -> None:
        if not 0 <= facility <= 23:
            raise ValueError(f"facility {facility!r} out of range (0-23)")
        if bom != "auto" and bom is not True and bom is not False:
            raise ValueError(f'bom must be "auto", True or False, not {bom!r}')
        self._prefixes = tuple(f"<{(facility << 3) | severity}>1 " for severity in range(8))
        fields = (
            sanitize_field(hostname, HOSTNAME),
            sanitize_field(app_name, APP_NAME),
            sanitize_field(procid, PROCID),
            sanitize_field(msgid, MSGID),
        )
        head = " " + " ".join(fields) + " "
        if sequence_id:
            before, after = _sequence_sd_parts(structured_data)
            self._middle = head + before
            self._sequence: str | None = after + " "
        else:
            self._middle = head + (format_sd(structured_data) if structured_data else "-") + " "
            self._sequence = None
        self._bom = bom
        self._max_size = max_size
        self._zone = zone_at
        # (second, the text before the microseconds per severity, the text after them): one
        # tuple, replaced whole, so a thread never mixes one second's parts with another's
        self._second: _Second = (-1, (), "")

    def render(
        self, severity: int, created: float, text: str, sequence: int | None = None
    ) -> bytes | None:
        """The message's bytes, or None when `format_5424` must make them (see the module)."""
        seconds = int(created)
        second = self._second
        if second[0] != seconds:
            entered = self._enter_second(seconds)
            if entered is None:
                return None
            second = entered
        _, leads, tail = second
        micros = round((created - seconds) * 1e6)
        if micros > 999_999 or micros < 0 or not text:
            return None  # a moment rounded into the next second, or no MSG
        bom = self._bom
        if bom is True or (bom and not text.isascii()):
            text = "\ufeff" + text  # UTF-8: EF BB BF
        after = self._sequence
        try:
            if after is None:
                out = (leads[severity] + "%06d" % micros + tail + text).encode()  # noqa: UP031
            elif sequence is None:
                return None  # numbered messages need their number
            else:
                parts = (leads[severity], micros, tail, sequence, after, text)
                out = ("%s%06d%s%d%s%s" % parts).encode()  # noqa: UP031
        except UnicodeEncodeError:
            return None  # lone surrogates: the codec writes them as '?'
        limit = self._max_size
        if limit is not None and len(out) > limit:
            return None
        return out

    def _enter_second(self, seconds: int) -> _Second | None:
        """The text around the microseconds for this second (kept for the next records);
        None when it cannot be made."""
        try:
            moment = datetime.fromtimestamp(seconds, self._zone(seconds))
        except (OverflowError, OSError, ValueError):
            return None
        parts = timestamp_parts(moment)
        if parts is None:
            return None
        before, after = parts
        second = (
            seconds,
            tuple(prefix + before for prefix in self._prefixes),
            after + self._middle,
        )
        self._second = second
        return second
