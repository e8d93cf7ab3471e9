"""Records as JSON lines in a file.

Decisions:

- A batch is written whole or not at all: `flush()` writes the batch's lines with `os.write`
  (no buffer that could keep half a batch and write it again later) and, when that fails (a
  full disk), cuts the file back to where the batch began before it raises, so the pipeline's
  retry of the batch leaves every line once.
- `reopen()` (SIGHUP) closes the file and opens the path again: after logrotate renamed the
  file, new lines go to a new file at the path, and the renamed one holds everything before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ..record import Record, record_to_json

__all__ = ["JsonLinesSink"]


class JsonLinesSink:
    """One JSON object per line (`record_to_dict`'s object, written by `record_to_json`), raw
    bytes lossless; `fsync` on request. Given an open binary stream instead of a path, it
    writes there (and `reopen()` does nothing)."""

    def __init__(self, path: str | Path | IO[bytes], *, fsync: bool = False) -> None:
        self._stream: IO[bytes] | None = None
        self._fd = -1
        if isinstance(path, (str, Path)):
            self.path: Path | None = Path(path)
            self._fd = self._open(self.path)
        else:
            self.path = None
            self._stream = path
        self.fsync = fsync
        self._chunks: list[bytes] = []

    @property
    def label(self) -> str:
        return f"jsonl {self.path if self.path is not None else '(stream)'}"

    @staticmethod
    def _open(path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write(self, records: Sequence[Record]) -> None:
        if not records:
            return
        text = "\n".join([record_to_json(r) for r in records])
        self._chunks.append(text.encode("utf-8") + b"\n")

    def flush(self) -> None:
        data, self._chunks = b"".join(self._chunks), []
        if self._stream is not None:
            self._stream.write(data)
            self._stream.flush()
            if self.fsync:
                os.fsync(self._stream.fileno())
            return
        if not data and not self.fsync:
            return
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, start)  # the batch is written again whole
            raise

    def reopen(self) -> None:
        """Open the path again (after a rename: a new file); the old descriptor is closed."""
        self.flush()
        if self.path is None:
            return
        fd = self._open(self.path)
        os.close(self._fd)
        self._fd = fd

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
