"""RELP sessions (rsyslog's imrelp/omrelp), also inside TLS from the first byte.

A message is acknowledged only once the pipeline has committed it.

What a `500` means (one meaning on both sides, librelp's): the record is refused for good.
librelp's client drops a message answered 500 from its unacknowledged list (it is never sent
again) and rsyslog's omrelp suspends the action; syslogkit's sender counts it as dropped
(`refused`) and tells it. So a commit that failed (the writer process died, a sink failed, an
edge's JetStream did not acknowledge in time) is never answered 500: nothing is answered, the
session is closed (with the `serverclose` hint), and the sender sends every unanswered record
again on its next session (at least once: what the failed commit did store arrives twice).
This collector answers 500 only where librelp's imrelp does: to commands it does not take.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from syslogkit.codec.relp import DEFAULT_MAX_DATA, MessageReceived, ProtocolViolation, RelpServer

from ..record import Record
from .stream import StreamConnection, StreamListener

__all__ = ["RelpConnection"]


class RelpConnection(StreamConnection):
    """One RELP session: a message is acknowledged only once the pipeline has committed it.

    Commits are asked for at once when the sender's window (`Limits.relp_window`) is full, else
    they happen on the pipeline's timer, so a sender waiting for acks never stalls.
    """

    def __init__(self, listener: StreamListener) -> None:
        super().__init__(listener)
        self.relp = RelpServer(max_data=max(DEFAULT_MAX_DATA, self.limits.max_frame + 1))
        self.unacked = 0

    def cuttable(self, now: float) -> bool:
        """Never while messages it sent wait for their answer (cut, they would be re-sent and
        stored twice)."""
        return self.unacked == 0 and super().cuttable(now)

    def _write(self) -> None:
        out = self.relp.data_to_send()
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out)
        if self.relp.state == "closed" and transport is not None and not self.closing:
            self.closing = True
            transport.close()

    def data_received(self, data: bytes) -> None:
        if not self.ready:
            self._early.append(data)
            return
        if self.closing:
            return
        loop = self.listener.loop
        now = loop.time()
        self.last_activity = now
        stats = self.stats
        stats.bytes += len(data)
        events = self.relp.receive_data(data)
        held = self.relp.buffered
        if held > self.max_buffered:
            self.max_buffered = held
            self.listener.max_buffered = max(self.listener.max_buffered, held)
        records: list[Record] = []
        txnrs: list[int] = []
        violation: str | None = None
        decoder = self.listener.decoder
        received_at = time.time()
        reference = decoder.reference()
        for event in events:
            if isinstance(event, MessageReceived):
                raw, note = decoder.message(event.message)
                records.append(
                    decoder.record(
                        raw,
                        received_at,
                        self.peer,
                        note,
                        reference=reference,
                        tls_subject=self.tls_subject,
                        tls_fingerprint=self.tls_fingerprint,
                    )
                )
                txnrs.append(event.txnr)
            elif isinstance(event, ProtocolViolation):
                violation = event.reason
        if records:
            # stored even when the session then fails: the sender re-sends (at least once)
            self.unacked += len(records)
            urgent = self.unacked >= self.limits.relp_window
            self.listener.pipeline.submit(records, self._committed(txnrs), urgent=urgent)
        if not held:
            self.partial_since = None
        elif records or self.partial_since is None:
            self.partial_since = now
        if violation is not None:
            stats.dropped["relp_protocol_error"] += 1
            self.listener.last_error = f"RELP from {self.peer}: {violation}"
            self.closing = True
            if self.transport is not None:
                self.transport.close()
            return
        self._write()

    def _committed(self, txnrs: list[int]) -> Callable[[bool], None]:
        loop = self.listener.loop

        def done(ok: bool) -> None:  # in the pipeline's thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: nothing to answer
                loop.call_soon_threadsafe(self._answer, txnrs, ok)

        return done

    def _answer(self, txnrs: list[int], ok: bool) -> None:
        self.unacked -= len(txnrs)
        if self.closing:
            return
        if not ok:
            self._not_stored(len(txnrs))
            return
        for txnr in txnrs:
            with contextlib.suppress(ValueError):  # the session ended meanwhile
                self.relp.ack(txnr, True, "OK")
        self._write()

    def _not_stored(self, count: int) -> None:
        """A commit failed: no answer (a 500 would make the sender drop the records for
        good), the session closed instead, so that the sender sends them again (see the
        module docstring). Counted as the connection cut `cut:not_stored`."""
        self.listener.last_error = (
            f"RELP from {self.peer}: {count} records not stored; session closed unanswered, "
            "the sender sends them again"
        )
        self.cut("not_stored")

    def eof_received(self) -> bool | None:
        self.partial_since = None
        return None

    def _flush_partial(self, error: str) -> None:
        self.partial_since = None  # a partial RELP frame is never acknowledged: it is re-sent

    def before_close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            out = self.relp.close()
            if out:
                self.transport.write(out)
