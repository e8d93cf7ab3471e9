"""Where received records go: one file per sink (a new sink is a new file), `base` for what a
sink is."""

from .base import (
    CommitsInBackground,
    HasStats,
    HoldsWhatItTook,
    Named,
    Reopens,
    Sink,
    sink_name,
)
from .forward import ForwardSink
from .jsonl import JsonLinesSink
from .sqlite import SQLiteSink
from .stdout import StdoutSink

__all__ = [
    "CommitsInBackground",
    "ForwardSink",
    "HasStats",
    "HoldsWhatItTook",
    "JsonLinesSink",
    "Named",
    "Reopens",
    "SQLiteSink",
    "Sink",
    "StdoutSink",
    "sink_name",
]
