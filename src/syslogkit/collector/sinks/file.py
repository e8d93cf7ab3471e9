"""Records as lines in files named from the record: `/var/log/remote/{host}/{app}.log`.

Decisions:

- The template's fields: `{host}`, `{app}`, `{msgid}`, `{procid}`, `{facility}` and `{severity}`
  (names: `auth`, `err`), `{peer}` (the sender's address, without the port), `{transport}`,
  `{date}` (the day the record was received, `YYYY-MM-DD`, UTC). A field the record lacks
  (unparsed, or `-`) is `-`.
- The base folder is the template's fixed part before the first field; every file is inside it.
  A value is made a safe name before it is put in the path: `/`, `\\`, control bytes (NUL
  included) and other unprintable characters become `_`, a leading `.` becomes `_` (so no `..`
  and no hidden files), and it is cut to `NAME_MAX_BYTES` bytes of UTF-8 (never inside a
  character). The joined path is checked to be inside the base folder once more, by
  `os.path`, before anything is opened.
- Lines: `raw` (the message as received: the RFC 5424 or RFC 3164 line), `human` (the
  `--stdout` form, `collector.render`) or `json` (`record_to_json`, as the JSON-lines sink). A
  CR or LF inside a message is written as `\\r` / `\\n`: one record, one line.
- A batch that fails part way (a file that cannot be opened or written) is taken back: the
  files written so far are cut back to where they ended, and the pipeline writes the batch
  again later (a sink's contract).
- At most `max_open` files are open at once; past it the one written least recently is closed
  (and opened again, appending, when a record needs it). `reopen()` closes them all so that the
  next write opens the names again: logrotate's rename, then SIGHUP.
"""

from __future__ import annotations

import collections
import os
import string
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..record import Record, record_to_json
from ..render import format_human

__all__ = ["FIELDS", "FORMATS", "NAME_MAX_BYTES", "FileSink", "safe_name"]

#: the longest a field's value may be in a path, in bytes of UTF-8 (a file name may be 255)
NAME_MAX_BYTES = 100
FORMATS = ("raw", "human", "json")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _peer_host(record: Record) -> str:
    peer = record.peer
    if peer.startswith("["):
        return peer[1:].partition("]")[0]
    host, sep, _ = peer.rpartition(":")
    return host if sep else peer


def _named(value: Any) -> str | None:
    return None if value is None else value.name.lower()


def _message_field(attribute: str, convert: Callable[[Any], str | None]) -> Callable[[Record], Any]:
    def read(record: Record) -> str | None:
        message = record.message
        return None if message is None else convert(getattr(message, attribute))

    return read


#: field -> how it is read from a record
FIELDS: dict[str, Callable[[Record], str | None]] = {
    "host": _message_field("hostname", _text),
    "app": _message_field("app_name", _text),
    "msgid": _message_field("msgid", _text),
    "procid": _message_field("procid", _text),
    "facility": _message_field("facility", _named),
    "severity": _message_field("severity", _named),
    "peer": _peer_host,
    "transport": lambda record: record.transport,
    "date": lambda record: datetime.fromtimestamp(record.received_at, timezone.utc).strftime(
        "%Y-%m-%d"
    ),
}


def safe_name(value: str | None) -> str:
    """`value` as one safe path component (see the module docstring); `-` for None or empty."""
    if not value:
        return "-"
    text = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in value)
    if text.startswith("."):
        text = "_" + text[1:]
    data = text.encode("utf-8")
    if len(data) > NAME_MAX_BYTES:
        text = data[:NAME_MAX_BYTES].decode("utf-8", "ignore")
    return text


def _escape_lines(data: bytes) -> bytes:
    if b"\n" in data or b"\r" in data:
        return data.replace(b"\r", b"\\r").replace(b"\n", b"\\n")
    return data


_LINES: dict[str, Callable[[Record], bytes]] = {
    "raw": lambda record: _escape_lines(record.raw),
    "human": lambda record: format_human(record).encode("utf-8", "replace"),
    "json": lambda record: record_to_json(record).encode("utf-8"),
}


class FileSink:
    """Lines into files named by a template (see the module docstring)."""

    def __init__(self, template: str, *, format: str = "raw", max_open: int = 64) -> None:
        if not os.path.isabs(template):  # from the working directory, as on the command line
            cwd = os.getcwd().replace("{", "{{").replace("}", "}}")
            template = os.path.join(cwd, template)
        self.template = template
        self.fields = _template_fields(template)
        if format not in FORMATS:
            raise ValueError(f"file sink: format must be one of {', '.join(FORMATS)}")
        if max_open < 1:
            raise ValueError("file sink: max_open must be at least 1")
        self.base = template_base(template)
        self._line = _LINES[format]
        self._readers = [(name, FIELDS[name]) for name in self.fields]
        self.max_open = max_open
        self._open: collections.OrderedDict[str, IO[bytes]] = collections.OrderedDict()
        self._paths: dict[tuple[str | None, ...], str] = {}
        self.opened = 0

    @property
    def label(self) -> str:
        return f"file {self.template}"

    def path_of(self, record: Record) -> str:
        """The file `record` goes to: inside the base folder, whatever its fields hold."""
        values = tuple(read(record) for _, read in self._readers)
        path = self._paths.get(values)
        if path is None:
            names = {name: safe_name(v) for (name, _), v in zip(self._readers, values, strict=True)}
            path = os.path.normpath(self.template.format_map(names))
            if os.path.commonpath([self.base, path]) != self.base or path == self.base:
                raise ValueError(f"file sink: {path!r} is not inside {self.base!r}")
            if len(self._paths) > 4096:
                self._paths.clear()
            self._paths[values] = path
        return path

    def write(self, records: Sequence[Record]) -> None:
        by_path: dict[str, list[bytes]] = {}
        line = self._line
        for record in records:
            by_path.setdefault(self.path_of(record), []).append(line(record))
        written: list[tuple[IO[bytes], int]] = []
        try:
            for path, lines in by_path.items():
                lines.append(b"")
                file = self._file(path)
                written.append((file, file.tell()))
                file.write(b"\n".join(lines))
        except BaseException:
            self._undo(written)
            raise

    def _undo(self, written: list[tuple[IO[bytes], int]]) -> None:
        """A batch that failed part way is taken back (the pipeline writes it again)."""
        for file, end in written:
            try:
                file.truncate(end)
            except (OSError, ValueError):  # closed, or the disk refuses: the retry may double
                continue

    def _file(self, path: str) -> IO[bytes]:
        file = self._open.get(path)
        if file is not None:
            self._open.move_to_end(path)
            return file
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        file = open(path, "ab")  # noqa: SIM115 - kept open, closed by _evict/reopen/close
        self.opened += 1
        self._open[path] = file
        while len(self._open) > self.max_open:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        return file

    def flush(self) -> None:
        for file in self._open.values():
            file.flush()

    def reopen(self) -> None:
        """Close every file; the next record opens its name again (after logrotate)."""
        while self._open:
            _, file = self._open.popitem(last=False)
            file.close()

    def close(self) -> None:
        self.reopen()

    def stats(self) -> dict[str, Any]:
        return {"files_open": len(self._open), "files_opened": self.opened}


def _template_fields(template: str) -> list[str]:
    fields: list[str] = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if name not in FIELDS or spec or conversion:
            raise ValueError(
                f"file sink: {{{name}}} is not a field of a path ({', '.join(FIELDS)})"
            )
        if name not in fields:
            fields.append(name)
    return fields


def template_base(template: str) -> str:
    """The folder every file of an absolute `template` is inside: the folder of its fixed part
    before the first field."""
    if ".." in Path(template).parts:
        raise ValueError(f"file sink: {template!r}: no '..' in a path template")
    fixed = template.split("{", 1)[0]
    return os.path.normpath(fixed if fixed.endswith(os.sep) else os.path.dirname(fixed))
