"""Failover across several collectors: the first reachable address in a list is used.

`FailoverTransport([primary, secondary, ...])` connects to the first member whose backoff
allows an attempt and that accepts the connection. While it writes to a later member, a helper
thread re-tries the first one (paced by the first one's own backoff); once that connection is
up the writer moves back to it at a batch boundary (`switch_pending()` / `switch()`): over RELP
after the answers on the old session came in, over plain streams after a graceful close of
the old connection. Members must all be stream transports of one kind (TCP, TLS, unix stream,
or all RELP).

Capabilities are declared as protocols: every failover is `Switching`; a failover of RELP
members is a `RelpFailoverTransport` (what `FailoverTransport(members)` returns for them), the
only one that is `Acknowledging`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence
from typing import ClassVar, Protocol, cast, runtime_checkable

from syslogkit.transports.backoff import Backoff
from syslogkit.transports.base import Transport, TransportError
from syslogkit.transports.relp import Acknowledging

__all__ = ["FailoverTransport", "RelpFailoverTransport", "Switching"]


@runtime_checkable
class Switching(Protocol):
    """A transport over several collectors that may move back to the first one."""

    @property
    def active(self) -> Transport:
        """The member in use (its backoff is the one a failed connection feeds)."""

    def switch_pending(self) -> bool:
        """True when the writer should settle its connection and call `switch()`."""

    def switch(self, timeout: float | None = None) -> None:
        """Close the current member gracefully and continue on the first one."""


class _EarliestBackoff(Backoff):
    """The failover's backoff: ready when any member may be tried, waiting for the soonest."""

    def __init__(self, members: Sequence[Transport]) -> None:
        super().__init__()
        self._members = members

    def ready(self) -> bool:
        return any(member.backoff.ready() for member in self._members)

    def remaining(self) -> float:
        return min(member.backoff.remaining() for member in self._members)

    def reset(self) -> None:
        for member in self._members:
            member.backoff.reset()


class FailoverTransport(Transport):
    """A list of transports: the first reachable one carries the records (see module doc)."""

    stream: ClassVar[bool] = True

    def __new__(cls, members: Sequence[Transport]) -> FailoverTransport:
        """RELP members make a `RelpFailoverTransport`; other streams this class."""
        kinds = {isinstance(member, Acknowledging) for member in members}
        if len(kinds) > 1:
            raise ValueError("failover members must all be RELP, or none of them")
        if kinds == {True} and not issubclass(cls, RelpFailoverTransport):
            cls = RelpFailoverTransport
        return super().__new__(cls)

    def __init__(self, members: Sequence[Transport]) -> None:
        if not members:
            raise ValueError("failover needs at least one address")
        if not all(member.stream for member in members):
            raise ValueError("failover works with stream transports (tcp, tls, unix, relp)")
        self.members: tuple[Transport, ...] = tuple(members)
        first = self.members[0]
        super().__init__(first.address, timeout=first.timeout, backoff=_EarliestBackoff(members))
        self.current = 0
        self.switches = 0
        self._probe: threading.Thread | None = None
        self._probe_ok = False
        self._closed = False

    # -- which member ---------------------------------------------------------------------------

    @property
    def active(self) -> Transport:
        """The member in use (or to be used next)."""
        return self.members[self.current]

    def _sync(self) -> None:
        member = self.active
        self.sock = member.sock
        self.address = member.address
        self.last_failure = member.last_failure

    def open(self) -> None:
        """Connect to the first member that may be tried and accepts; TransportError if none."""
        if self.sock is not None:
            return
        errors: list[TransportError] = []
        attempted = False
        for index, member in enumerate(self.members):
            if index == 0 and self._probe_busy():
                continue
            if index == 0 and self._probe_ok and member.sock is not None:
                self._probe_ok = False
            elif member.sock is None:
                if not member.backoff.ready():
                    continue
                try:
                    member.open()
                except TransportError as exc:
                    attempted = attempted or exc.attempted
                    errors.append(exc)
                    continue
            self.current = index
            self._sync()
            self.opened += 1
            return
        reason = errors[-1].reason if errors else self.last_failure
        self.last_failure = reason
        text = "; ".join(str(exc) for exc in errors) or "every address is backing off"
        raise TransportError(reason, f"no collector reachable: {text}", attempted=attempted)

    # -- re-trying the first member -------------------------------------------------------------

    def _probe_busy(self) -> bool:
        probe = self._probe
        return probe is not None and probe.is_alive()

    def _maybe_probe(self) -> None:
        if self.current == 0 or self._closed or self._probe_ok or self._probe_busy():
            return
        primary = self.members[0]
        if not primary.backoff.ready():
            return
        thread = threading.Thread(target=self._run_probe, name="syslogkit-failover", daemon=True)
        self._probe = thread
        with contextlib.suppress(RuntimeError):
            thread.start()

    def _run_probe(self) -> None:
        primary = self.members[0]
        try:
            primary.open()
        except TransportError:
            return
        except Exception:  # a transport bug must not kill anything
            primary.discard()
            return
        if self._closed:
            primary.discard()
            return
        self._probe_ok = True

    def switch_pending(self) -> bool:
        """True when the first member is connected again and the writer should move back."""
        if self.current != 0 and self._probe_ok and not self._probe_busy():
            return True
        self._maybe_probe()
        return False

    def switch(self, timeout: float | None = None) -> None:
        """Close the current member gracefully and continue on the first one."""
        if not (self.current != 0 and self._probe_ok):
            return
        old = self.active
        with contextlib.suppress(Exception):
            old.close(self.timeout if timeout is None else timeout)
        self._probe_ok = False
        self.current = 0
        self.switches += 1
        self._sync()

    # -- Transport interface, delegated ----------------------------------------------------------

    def alive(self) -> bool:
        member = self.active
        try:
            return member.alive()
        finally:
            self._sync()

    def write(self, data: bytes) -> None:
        member = self.active
        try:
            member.write(data)
        finally:
            self._sync()

    def close(self, timeout: float | None = None) -> None:
        self._closed = True
        for index, member in enumerate(self.members):
            if index == self.current or (index == 0 and self._probe_ok):
                with contextlib.suppress(Exception):
                    member.close(timeout)
            elif member.sock is not None and not (index == 0 and self._probe_busy()):
                member.discard()
        self._probe_ok = False
        self._sync()

    def discard(self) -> None:
        self.active.discard()
        self._sync()

    def forget(self) -> None:
        for member in self.members:
            member.forget()
        self._probe = None
        self._probe_ok = False
        self.current = 0
        self.sock = None
        self.backoff.reset()

    def _connect(self, deadline: float) -> socket.socket:  # pragma: no cover - open() overrides
        raise NotImplementedError


class RelpFailoverTransport(FailoverTransport):
    """A failover whose members are all RELP: acknowledging, through the active member."""

    def _member(self) -> Acknowledging:
        # every member was checked to be Acknowledging in __new__ (an isinstance on a runtime
        # Protocol costs microseconds, and this runs several times per writer round)
        return cast(Acknowledging, self.active)

    @property
    def acknowledges(self) -> bool:
        """Kept for callers of the old attribute: True."""
        return True

    @property
    def window(self) -> int:
        """The current member's window."""
        return self._member().window

    @property
    def max_data(self) -> int:
        """The current member's largest message."""
        return self._member().max_data

    def send_messages(self, messages: Sequence[bytes]) -> list[int]:
        """See `RelpTransport.send_messages`."""
        try:
            return self._member().send_messages(messages)
        finally:
            self._sync()

    def acknowledged(self, timeout: float) -> list[tuple[int, bool]]:
        """See `RelpTransport.acknowledged`."""
        try:
            return self._member().acknowledged(timeout)
        finally:
            self._sync()
