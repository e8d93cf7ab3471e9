"""What a peer daemon wrote: JSON lines read back, and a bounded wait for enough of them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class PeerError(RuntimeError):
    """A peer daemon did not start, did not become ready, or did not deliver what was awaited."""


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of `path`, in file order ([] while it does not exist).

    A line that does not parse (torn by a SIGKILL) is kept as {"_unparsed": line}.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    for line in data.split(b"\n")[:-1]:
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"_unparsed": line.decode("utf-8", "replace")})
    return out


def wait_for_records(
    read: Callable[[], list[dict[str, Any]]],
    n: int,
    timeout: float,
    diagnostics: Callable[[], str],
) -> list[dict[str, Any]]:
    """Poll `read()` until it returns at least `n` records and return them all; PeerError with
    the last records and `diagnostics()` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if len(found) >= n:
            return found
        if time.monotonic() > deadline:
            shown = "\n".join(json.dumps(r, ensure_ascii=False) for r in found[-20:])
            raise PeerError(
                f"waited {timeout} s for {n} records, got {len(found)} (last ones below)\n"
                f"{shown}\n" + diagnostics()
            )
        time.sleep(0.02)
