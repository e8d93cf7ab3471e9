"""Records for a person: one line per record (`format_human`), colours by severity.

Shared by the stdout sink and `syslogkit tail` / `query`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from .record import Record

__all__ = ["COLOURS", "RESET", "colour", "format_human", "one_line"]

COLOURS: Final = {
    0: "\x1b[1;97;41m",
    1: "\x1b[1;91m",
    2: "\x1b[1;91m",
    3: "\x1b[91m",
    4: "\x1b[93m",
    5: "\x1b[96m",
    6: "",
    7: "\x1b[2m",
}
RESET: Final = "\x1b[0m"


def one_line(text: str) -> str:
    """CR and LF shown as `\\r` and `\\n`: one record, one line."""
    if "\n" in text or "\r" in text:
        return text.replace("\r", "\\r").replace("\n", "\\n")
    return text


def format_human(record: Record, *, color: bool = False) -> str:
    """One line for a person: time, host, app[procid], severity, message (and a parse error)."""
    m = record.message
    if m is None:
        when = datetime.fromtimestamp(record.received_at).astimezone()
        text = record.raw.decode("utf-8", "replace")
        line = f"{when.isoformat(timespec='seconds')} {record.peer} !unparsed: {one_line(text)}"
        return f"\x1b[2m{line}{RESET}" if color else line
    ts = m.timestamp or datetime.fromtimestamp(record.received_at).astimezone()
    sev = m.severity
    level = sev.name.lower() if sev is not None else "-"
    app = m.app_name or "-"
    if m.procid:
        app += f"[{m.procid}]"
    sd = ""
    if m.structured_data:
        sd = " " + "".join(
            "[" + " ".join([el.id] + [f'{k}="{v}"' for k, v in el.params]) + "]"
            for el in m.structured_data
        )
    line = (
        f"{ts.isoformat(timespec='milliseconds')} {m.hostname or '-'} {app} {level}:"
        f"{sd} {one_line(m.msg or '')}"
    )
    if record.error:
        line += f"  (! {record.error})"
    if color and sev is not None:
        return colour(line, int(sev))
    return line


def colour(line: str, severity: int | None) -> str:
    """`line` in the colour of `severity` (unchanged for informational and unknown)."""
    code = COLOURS.get(severity, "") if severity is not None else ""
    return code + line + RESET if code else line
