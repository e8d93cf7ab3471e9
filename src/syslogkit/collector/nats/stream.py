"""The JetStream stream between edge collectors and stores (`syslogkit nats init`).

Defaults: stream `SYSLOG`, subjects `syslog.>` (the edge publishes on
`syslog.<facility>.<severity>`), file storage, limits retention (by age and size: messages
are kept for every store to read, not deleted when one store acknowledged them), a duplicate
window of 2 minutes (a re-publish with the same `Nats-Msg-Id` within it is stored once).

Decision (issue 23 item 8): the stream discards *new* messages at its size limit, never old
ones. With `DiscardPolicy.OLD` a full stream silently deleted the oldest batches, read or not:
stores that lagged lost them. With `NEW`, a publish to a full stream is refused: the edges keep
their batches (memory, spool, then back-pressure on their senders), say so in one line and turn
`/healthz` not ok, and publish them once there is room (the age limit frees it, or a larger
`--max-size`). The age limit still deletes by age, read or not: it must be longer than any
store outage you plan to ride out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .connect import ErrorLog, NatsOptions, connect, require_nats

__all__ = ["DEFAULT_STREAM", "DEFAULT_SUBJECT_PREFIX", "StreamSettings", "ensure_stream"]

DEFAULT_STREAM = "SYSLOG"
DEFAULT_SUBJECT_PREFIX = "syslog"


@dataclass
class StreamSettings:
    """What `ensure_stream` creates or updates. `max_age`, `duplicate_window` in seconds,
    `max_bytes` in bytes (None: no limit)."""

    name: str = DEFAULT_STREAM
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    replicas: int = 1
    max_age: float | None = 7 * 86400.0
    max_bytes: int | None = None
    duplicate_window: float = 120.0
    memory: bool = False

    def config(self) -> Any:
        api = require_nats().js.api
        return api.StreamConfig(
            name=self.name,
            subjects=[f"{self.subject_prefix}.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.MEMORY if self.memory else api.StorageType.FILE,
            num_replicas=self.replicas,
            max_age=self.max_age or 0,
            max_bytes=self.max_bytes or -1,
            duplicate_window=self.duplicate_window,
            discard=api.DiscardPolicy.NEW,  # never delete unread batches (module docstring)
        )


async def ensure_stream(
    options: NatsOptions, settings: StreamSettings, *, timeout: float = 30.0
) -> tuple[str, dict[str, Any]]:
    """Create the stream, or update it to `settings`; ("created" | "updated", its config)."""
    nats = require_nats()
    errors = ErrorLog()
    nc = await connect(options, errors)
    try:
        js = nc.jetstream(timeout=timeout)
        config = settings.config()
        try:
            await js.stream_info(settings.name)
        except nats.js.errors.NotFoundError:
            info = await js.add_stream(config)
            return "created", _summary(info.config)
        info = await js.update_stream(config)
        return "updated", _summary(info.config)
    finally:
        await nc.close()


def _summary(config: Any) -> dict[str, Any]:
    return {
        "name": config.name,
        "subjects": config.subjects,
        "replicas": config.num_replicas,
        "storage": str(getattr(config.storage, "value", config.storage)),
        "max_age": config.max_age,
        "max_bytes": config.max_bytes,
        "duplicate_window": config.duplicate_window,
        "discard": str(getattr(config.discard, "value", config.discard)),
    }
