"""The writing side of a `Store` in a child process of its own (`StoreProcess`), and
`store_batch`, the one way a batch goes into a store (in that child or in the collector).

Decisions:

- A batch is stored whole or not at all: inserted, committed, and only then retention runs; a
  retention error after the commit is told, never turned into a failed batch (a RELP sender
  would send a stored batch again: stored twice).
- Below the free-space floor (`min_free` bytes) nothing is written (`Store.ensure_free`: with a
  retention size set, the oldest messages are deleted first to make room); the batch fails
  before SQLite would fail mid-transaction and the pipeline retries it.
- A writer process that dies is restarted, and the batches it had not answered are committed
  again, each once: the new child says the store's last id, and the batches whose rows that id
  already covers (committed before the death, not yet answered) are not sent again.
"""

from __future__ import annotations

import contextlib
import gc
import json
import marshal
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .db import Origin, StoreError
from .partitions import Store

__all__ = ["BatchResult", "StoreProcess", "store_batch"]

#: marshal format 4 (references): the rows of a batch share their per-connection values
#: (transport, peer, listener: one tuple per connection, `decode.Decoder.records`), written
#: once; measured on such rows against format 2: written in half the time, read in 0.8
_MARSHAL_VERSION = 4

#: a dead writer process is restarted at most this many times in a row (then the batch fails,
#: and the pipeline retries it later)
_RESTARTS = 3


BatchResult = tuple[list[str], bool]
"""What `store_batch` has to tell (lines), and whether retention failed after the commit."""


def store_batch(
    store: Store,
    rows: Sequence[tuple[Any, ...]],
    origins: Sequence[Origin] = (),
    *,
    min_free: int,
    retain_interval: float,
) -> BatchResult:
    """Insert and commit one batch of rows (see the module docstring); raises when the batch
    is not stored (then nothing of it is)."""
    notes: list[str] = []
    if min_free > 0:
        _, note = store.ensure_free(min_free)
        if note is not None:
            notes.append(note)
    try:
        store.insert_rows(rows, origins)
        store.commit()
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            store.rollback()
        raise
    try:
        store.maybe_retain(retain_interval)
    except Exception as exc:  # the batch is committed: it must not be sent again
        with contextlib.suppress(sqlite3.Error):
            store.rollback()
        notes.append(f"store {store.path}: retention failed after a commit ({exc}); retried later")
        return notes, True
    return notes, False


class StoreProcess:
    """The writing side of a `Store` in a child process (`python -m syslogkit.collector.store`).

    Building rows is done here; SQLite's work (B-trees, indexes, full-text tokenizing) runs in
    the child, in parallel with the collector's parsing instead of competing with it for the
    GIL: about twice the ingest rate on two cores. `write(rows)` sends one batch, the child
    inserts and commits it and answers; an answer means committed. Rows travel with `marshal`
    (tuples of str, bytes, int, float and None) over the child's stdin/stdout.

    The child ignores SIGINT and SIGTERM (the collector decides when it stops: it closes the
    pipe) and exits when the pipe closes, also when the collector was killed. A child that dies
    is restarted and its unanswered batches are committed again, each once (module docstring);
    `tell` gets one line for each restart and what the child had to say (room made, retention
    errors). Counters: `restarts`, `deleted` (by retention), `retention_errors`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_age: float | None = None,
        max_bytes: int | None = None,
        synchronous: str = "NORMAL",
        retain_interval: float = 5.0,
        min_free: int = 0,
        timeout: float = 60.0,
        tell: Callable[[str], None] | None = None,
    ) -> None:
        self.path = str(path)
        self.config = {
            "path": self.path,
            "max_age": max_age,
            "max_bytes": max_bytes,
            "synchronous": synchronous,
            "retain_interval": retain_interval,
            "min_free": min_free,
        }
        self.timeout = timeout
        self.tell = tell
        #: what retention deleted (messages; of them, by the size cap while younger than
        #: `max_age`), over every child this process started
        self.deleted = 0
        self.deleted_young = 0
        self._counted = (0, 0)  # the counts of the children before this one
        self.restarts = 0
        self.retention_errors = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._sent = 0  # batches numbered 1, 2, ... in the order they were sent
        #: batches sent and not yet answered: rows and origins
        self._unanswered: dict[int, tuple[Sequence[tuple[Any, ...]], Sequence[Origin]]] = {}
        self._order: list[int] = []  # the batches the child has, in the order it answers
        self._replies: dict[int, Any] = {}
        self._last_id = 0  # the store's last id after the last batch answered
        self._started_id = 0
        self._start()
        self._last_id = self._started_id

    def _start(self) -> None:
        self._counted = (self.deleted, self.deleted_young)
        self._order = []
        self._stderr.seek(0)
        self._stderr.truncate()
        root = str(Path(__file__).resolve().parents[3])  # the folder that holds syslogkit/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-W",
                "ignore::RuntimeWarning:runpy",  # "found in sys.modules": harmless here
                "-m",
                "syslogkit.collector.store.writer",
                json.dumps(self.config),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,  # a file: a pipe nobody reads could fill up and block it
            env=env,
            close_fds=True,
        )
        reply = self._receive()
        if reply[0] != "ready":
            self._reap()
            raise StoreError(str(reply[1]))
        self._started_id = int(reply[1])  # the store's last id when this child started

    def _send(self, message: Any) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise StoreError("the store's writer process is not running")
        data = marshal.dumps(message, _MARSHAL_VERSION)
        try:
            proc.stdin.write(struct.pack("<I", len(data)) + data)
            proc.stdin.flush()
        except (OSError, ValueError) as exc:
            self._reap()
            raise StoreError(f"the store's writer process died ({exc})") from None

    def _receive(self) -> Any:
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise StoreError("the store's writer process is not running")
        head = proc.stdout.read(4)
        if len(head) < 4:
            self._reap()
            self._stderr.seek(0)
            err = self._stderr.read()[-4000:]
            lines = err.decode("utf-8", "replace").strip().splitlines()
            raise StoreError(f"the store's writer process died: {lines[-1] if lines else '?'}")
        (size,) = struct.unpack("<I", head)
        return marshal.loads(proc.stdout.read(size))

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def write(self, rows: Sequence[tuple[Any, ...]], origins: Sequence[Origin] = ()) -> None:
        """Insert and commit one batch; returns once it is committed. Restarts a dead child."""
        self.start(rows, origins)()

    def start(
        self, rows: Sequence[tuple[Any, ...]], origins: Sequence[Origin] = ()
    ) -> Callable[[], None]:
        """Send one batch (with the JetStream origins of its rows, `Store.insert_rows`); the
        returned function waits until it is committed (or raises).

        Batches are answered in the order they were sent, so the next batch may be sent
        before the previous one's function is called (the pipeline does: the child finds the
        next batch waiting in its pipe when it has committed one). A child that died meanwhile
        is restarted and given the batches it had not answered (each committed once).
        """
        self._sent += 1
        number = self._sent
        self._unanswered[number] = (rows, origins)
        try:
            if self._proc is None:
                self._recover(StoreError("the store's writer process is not running"))
            else:
                self._order.append(number)
                try:
                    self._send(_message(rows, origins))
                except StoreError as exc:
                    self._recover(exc)
        except StoreError:
            self._replies.pop(number, None)  # told by raising: nobody waits for this one
            raise
        return lambda: self._finish(number)

    def _finish(self, number: int) -> None:
        while number not in self._replies:
            if number not in self._unanswered:
                raise StoreError(f"batch {number} was never sent to the store's writer")
            if not self._order:
                self._recover(StoreError("the store's writer process is not running"))
                continue
            try:
                reply = self._receive()
            except StoreError as exc:
                self._recover(exc)
                continue
            self._answered(self._order.pop(0), reply)
        reply = self._replies.pop(number)
        if reply[0] != "ok":
            raise StoreError(str(reply[1]))

    def _answered(self, number: int, reply: Any) -> None:
        self._unanswered.pop(number, None)
        if reply[0] == "ok":
            _, _, deleted, last_id, notes, retention_failed, young = reply
            self._count(deleted, young)
            self._last_id = int(last_id)
            self.retention_errors += bool(retention_failed)
            for note in notes:
                self._tell(note)
        elif len(reply) > 3:  # deleted to make room, although the batch could not go in
            self._count(reply[2], reply[3])
        self._replies[number] = reply

    def _count(self, deleted: int, young: int) -> None:
        """The child's retention counts (from its start) on top of those of the ones before."""
        self.deleted = self._counted[0] + int(deleted)
        self.deleted_young = self._counted[1] + int(young)

    def _recover(self, cause: StoreError) -> None:
        """Restart a dead child and give it the batches it had not answered, skipping those
        its store already holds (see the module docstring); raises when it cannot restart."""
        self._reap()
        waiting = sorted(self._unanswered)
        for attempt in range(_RESTARTS):
            try:
                self._start()
                break
            except (StoreError, OSError) as exc:
                cause = StoreError(f"{cause}; restarting it failed: {exc}")
                time.sleep(0.1 * 2**attempt)
        else:
            for number in waiting:  # not known to be stored: the pipeline sends them again
                self._unanswered.pop(number)
                self._replies[number] = ("error", str(cause))
            raise cause
        self.restarts += 1
        before, covered = self._last_id, self._started_id
        committed = 0
        for number in waiting:
            rows, origins = self._unanswered[number]
            if not self._order and before + len(rows) <= covered:
                before += len(rows)  # committed before the child died, never answered
                committed += 1
                self._answered(number, ("ok", len(rows), 0, before, [], False, 0))
                continue
            self._order.append(number)  # this one and every later one: sent again
            self._send(_message(rows, origins))
        self._last_id = covered if not self._order else before
        self._tell(
            f"store {self.path}: {cause}; restarted it:"
            f" {len(self._order)} unanswered batches sent again, {committed} were committed"
        )

    def _tell(self, line: str) -> None:
        if self.tell is not None:
            self.tell(line)

    def close(self) -> None:
        """Let the child checkpoint and close the database, and wait for it."""
        if self._proc is None:
            self._stderr.close()
            return
        with contextlib.suppress(StoreError):
            self._send(None)
            self._receive()
        self._reap()
        self._stderr.close()


def _message(rows: Sequence[tuple[Any, ...]], origins: Sequence[Origin]) -> Any:
    """A batch as sent to the child: the rows (a list), or (rows, origins) when it has origins."""
    return (list(rows), list(origins)) if origins else list(rows)


def _writer_main(config_json: str) -> int:
    """The child of `StoreProcess`: batches in on stdin, answers out on stdout."""
    gc.freeze()  # as `syslogkit collect` does: the rows of a batch are many young objects
    gc.set_threshold(50_000, 20, 100)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    config = json.loads(config_json)
    source = sys.stdin.buffer
    sink = sys.stdout.buffer

    def answer(message: Any) -> None:
        data = marshal.dumps(message)
        sink.write(struct.pack("<I", len(data)) + data)
        sink.flush()

    try:
        store = Store(
            config["path"],
            max_age=config["max_age"],
            max_bytes=config["max_bytes"],
            synchronous=config["synchronous"],
        )
    except (StoreError, sqlite3.Error, OSError, ValueError) as exc:
        answer(("error", str(exc)))
        return 1
    answer(("ready", store.last_id()))
    interval = float(config["retain_interval"])
    min_free = int(config["min_free"])
    while True:
        head = source.read(4)
        if len(head) < 4:
            store.rollback()
            store.close()
            return 0
        (size,) = struct.unpack("<I", head)
        message = marshal.loads(source.read(size))
        if message is None:
            store.close()
            answer(("closed",))
            return 0
        rows, origins = message if isinstance(message, tuple) else (message, ())
        try:
            notes, retention_failed = store_batch(
                store, rows, origins, min_free=min_free, retain_interval=interval
            )
        except StoreError as exc:
            answer(("error", str(exc), store.deleted, store.deleted_young))
            continue
        except Exception as exc:
            answer(("error", f"{type(exc).__name__}: {exc}", store.deleted, store.deleted_young))
            continue
        answer(
            (
                "ok",
                len(rows),
                store.deleted,
                store.last_id(),
                notes,
                retention_failed,
                store.deleted_young,
            )
        )


if __name__ == "__main__":
    sys.exit(_writer_main(sys.argv[1]))
