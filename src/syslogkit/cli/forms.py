"""What `collect`, `tail`, `query` and `nats` read from the command line: durations, sizes,
instants, and the default store; kept apart so the reading commands import nothing else."""

from __future__ import annotations

import re
import time
from datetime import datetime

from syslogkit.cli.main import CliError

__all__ = ["DEFAULT_DB", "parse_duration", "parse_size", "parse_time"]

DEFAULT_DB = "syslog.db"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZES = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(text: str) -> float:
    """`30`, `30s`, `10m`, `2h`, `7d`, `1w` (also combined: `1h30m`) -> seconds."""
    value = text.strip().lower()
    try:
        return float(value)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", value)
    if not parts or re.sub(r"[\d.\s]+[smhdw]", "", value):
        raise CliError(f"bad duration {text!r} (e.g. 30s, 10m, 2h, 7d)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_size(text: str) -> int:
    """`1048576`, `500k`, `64M`, `2G` (binary units) -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtb]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise CliError(f"bad size {text!r} (e.g. 500M, 2G)")
    return int(float(match[1]) * _SIZES[match[2]])


def parse_time(text: str, now: float | None = None) -> float:
    """An instant as epoch seconds: RFC 3339 / ISO 8601 (local time when no zone is given),
    `10m` or `2h ago` (that long before now), `now`, `today`, or epoch seconds."""
    now = time.time() if now is None else now
    value = text.strip()
    low = value.lower()
    if low == "now":
        return now
    if low == "today":
        midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight.timestamp()
    if low.endswith(" ago"):
        low = low[:-4].strip()
    if re.fullmatch(r"(\d+(?:\.\d+)?\s*[smhdw]\s*)+", low):
        return now - parse_duration(low)
    if re.fullmatch(r"\d{9,}(\.\d+)?", value):
        return float(value)
    iso = value.replace(" ", "T", 1) if re.match(r"\d{4}-\d\d-\d\d \d", value) else value
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise CliError(
            f"bad time {text!r} (e.g. 2026-01-31T12:00:00Z, 2026-01-31, 10m, 2h ago)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed.timestamp()
