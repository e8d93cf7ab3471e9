"""The writing side of a `Store` in a child process of its own (`StoreProcess`)."""

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .db import Origin, StoreError
from .partitions import Store

__all__ = ["StoreProcess"]

#: marshal format 4 (references): the rows of a batch share their per-connection values
#: (transport, peer, listener: one tuple per connection, `decode.Decoder.records`), written
#: once; measured on such rows against format 2: written in half the time, read in 0.8
_MARSHAL_VERSION = 4


class StoreProcess:
    """The writing side of a `Store` in a child process (`python -m syslogkit.collector.store`).

    Building rows is done here; SQLite's work (B-trees, indexes, full-text tokenizing) runs in
    the child, in parallel with the collector's parsing instead of competing with it for the
    GIL: about twice the ingest rate on two cores. `write(rows)` sends one batch, the child
    inserts and commits it and answers; an answer means committed. Rows travel with `marshal`
    (tuples of str, bytes, int, float and None) over the child's stdin/stdout.

    The child ignores SIGINT and SIGTERM (the collector decides when it stops: it closes the
    pipe) and exits when the pipe closes, also when the collector was killed: a batch that was
    not answered is not committed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_age: float | None = None,
        max_bytes: int | None = None,
        synchronous: str = "NORMAL",
        retain_interval: float = 5.0,
        timeout: float = 60.0,
    ) -> None:
        self.path = str(path)
        self.config = {
            "path": self.path,
            "max_age": max_age,
            "max_bytes": max_bytes,
            "synchronous": synchronous,
            "retain_interval": retain_interval,
        }
        self.timeout = timeout
        #: what retention deleted (messages; of them, by the size cap while younger than
        #: `max_age`), over every child this process started
        self.deleted = 0
        self.deleted_young = 0
        self._counted = (0, 0)  # the counts of the children before this one
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._start()

    def _start(self) -> None:
        self._counted = (self.deleted, self.deleted_young)
        self._sent = self._answered = 0  # batches sent to this child, and answered by it
        self._replies: dict[int, Any] = {}
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
        self,
        rows: Sequence[tuple[Any, ...]] | dict[str, int],
        origins: Sequence[Origin] = (),
    ) -> Callable[[], None]:
        """Send one batch (with the JetStream origins of its rows, `Store.insert_rows`), or a
        command (`make_room`); the returned function waits until it is committed (or raises).

        Batches are answered in the order they were sent, so the next batch may be sent
        before the previous one's function is called (the pipeline does: the child finds the
        next batch waiting in its pipe when it has committed one). A batch sent to a child that
        has died since raises `StoreError` when waited for (it may or may not be committed: it
        was never acknowledged).
        """
        if self._proc is None:
            self._start()
        proc = self._proc
        # the message: the rows (a list), (rows, origins) when the batch has origins, or a
        # command (a dict)
        if isinstance(rows, dict):
            self._send(rows)
        else:
            self._send((list(rows), list(origins)) if origins else list(rows))
        self._sent += 1
        number = self._sent
        return lambda: self._finish(proc, number)

    def _finish(self, proc: subprocess.Popen[bytes] | None, number: int) -> None:
        if proc is not self._proc:
            raise StoreError("the store's writer process died before answering")
        while self._answered < number:  # answers come in order: keep those of later batches
            reply = self._receive()
            self._answered += 1
            self._replies[self._answered] = reply
        reply = self._replies.pop(number)
        if reply[0] != "ok":
            raise StoreError(str(reply[1]))
        self._count(reply)

    def _count(self, reply: Any) -> None:
        self.deleted = self._counted[0] + int(reply[2])
        self.deleted_young = self._counted[1] + int(reply[3])

    def make_room(self, bytes_needed: int) -> int:
        """`Store.make_room` in the child: delete the oldest partitions until `bytes_needed`
        bytes are freed; returns how many messages went. Call it between batches (from the
        thread that waits for them)."""
        if self._proc is None:
            self._start()
        before = self.deleted
        self.start({"make_room": int(bytes_needed)})()
        return self.deleted - before

    def close(self) -> None:
        """Let the child checkpoint and close the database, and wait for it."""
        if self._proc is None:
            return
        with contextlib.suppress(StoreError):
            self._send(None)
            self._receive()
        self._reap()
        self._stderr.close()


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
    answer(("ready",))
    interval = float(config["retain_interval"])
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
            if isinstance(rows, dict):
                store.make_room(int(rows["make_room"]))
                rows = []
            else:
                store.insert_rows(rows, origins)
                store.commit()
                store.maybe_retain(interval)
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                store.rollback()
            answer(("error", f"{type(exc).__name__}: {exc}"))
            continue
        answer(("ok", len(rows), store.deleted, store.deleted_young))


if __name__ == "__main__":
    sys.exit(_writer_main(sys.argv[1]))
