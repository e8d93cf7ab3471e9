"""Records as lines on a stream (stdout): human-readable (`collector.render`) or JSON."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import IO

from ..record import Record, record_to_json
from ..render import format_human

__all__ = ["StdoutSink"]


class StdoutSink:
    """Human-readable lines on a stream (stdout by default), coloured when it is a terminal.

    Output errors (a closed pipe) are counted, never raised: a reader going away must not stop
    the store from committing.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        color: bool | None = None,
        json_lines: bool = False,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        if color is None:
            isatty = getattr(self.stream, "isatty", None)
            color = bool(isatty and isatty()) and os.environ.get("NO_COLOR") is None
        self.color = color
        self.json_lines = json_lines
        self.errors = 0

    def write(self, records: Sequence[Record]) -> None:
        try:
            if self.json_lines:
                text = "".join([record_to_json(r) + "\n" for r in records])
            else:
                text = "".join(format_human(r, color=self.color) + "\n" for r in records)
            self.stream.write(text)
        except (OSError, ValueError):
            self.errors += 1

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            self.errors += 1

    def close(self) -> None:
        self.flush()
