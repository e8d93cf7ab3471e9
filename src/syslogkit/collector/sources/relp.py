"""RELP sessions (rsyslog's imrelp/omrelp), also inside TLS from the first byte.

A message is acknowledged only once the pipeline has committed it.
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
        for txnr in txnrs:
            with contextlib.suppress(ValueError):  # the session ended meanwhile
                self.relp.ack(txnr, ok, "OK" if ok else "not stored")
        if not ok:
            self.stats.dropped["store_error"] += len(txnrs)
        self._write()

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
