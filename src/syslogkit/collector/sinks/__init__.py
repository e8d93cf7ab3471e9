"""Where received records go: one file per sink (a new sink is a new file), `base` for what a
sink is."""

from .base import CommitsInBackground, HasStats, Sink
from .forward import ForwardSink
from .jsonl import JsonLinesSink
from .sqlite import SQLiteSink
from .stdout import StdoutSink

__all__ = [
    "CommitsInBackground",
    "ForwardSink",
    "HasStats",
    "JsonLinesSink",
    "SQLiteSink",
    "Sink",
    "StdoutSink",
]
