"""Records as JSON lines in a file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ..record import Record, record_to_json

__all__ = ["JsonLinesSink"]


class JsonLinesSink:
    """One JSON object per line (`record_to_dict`'s object, written by `record_to_json`), raw
    bytes lossless; `fsync` on request."""

    def __init__(self, path: str | Path | IO[bytes], *, fsync: bool = False) -> None:
        if isinstance(path, (str, Path)):
            self._file: IO[bytes] = open(path, "ab")  # noqa: SIM115 - closed in close()
            self._owned = True
        else:
            self._file = path
            self._owned = False
        self.fsync = fsync

    def write(self, records: Sequence[Record]) -> None:
        if not records:
            return
        text = "\n".join([record_to_json(r) for r in records])
        self._file.write(text.encode("utf-8") + b"\n")

    def flush(self) -> None:
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self.flush()
        if self._owned:
            self._file.close()
