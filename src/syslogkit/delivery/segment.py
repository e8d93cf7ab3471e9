"""The spool's file format: one segment file, its records and its commit slots.

A segment is a 40-byte header (magic, then two commit slots) and records. A record is
`length (u32) | crc32 (u32) | flags (u8) | payload`, the crc covering flags and payload, so a
record is either whole or recognised as torn: reading stops at the first record whose length
runs past the end of the file or whose crc does not match (a torn tail after a crash). The
commit slots hold the offset up to which records were delivered, each with a sequence number
and a crc; the newer valid slot wins, so a torn slot write falls back to the previous commit
(at-least-once: a record may be replayed twice after a crash, never lost).

This module knows bytes and offsets only; which segments exist, who owns them and when they
are removed is `syslogkit.delivery.spool`.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Callable
from typing import Final

__all__ = ["FLAG_SENT", "HEADER", "RECORD_HEAD", "Segment", "record_head"]

MAGIC: Final = b"SKSPOOL1"
_SLOT: Final = struct.Struct("<IQI")  # commit sequence, offset, crc32 of the first two
_SLOTS_AT: Final = len(MAGIC)
HEADER: Final = len(MAGIC) + 2 * _SLOT.size
_REC: Final = struct.Struct("<IIB")  # payload length, crc32(flags + payload), flags
#: Bytes before each record's payload.
RECORD_HEAD: Final = _REC.size
#: Record flag: the record had been written to a connection before it was spooled.
FLAG_SENT: Final = 1
_READ_CHUNK: Final = 256 * 1024
_MAX_RECORD: Final = 64 * 1024 * 1024

#: A record found in a segment: payload, the offset where it ends, flags.
Found = tuple[bytes, int, int]


def record_head(payload: bytes, flag: int) -> bytes:
    """The bytes written before `payload` in a segment."""
    return _REC.pack(len(payload), zlib.crc32(payload, zlib.crc32(bytes((flag,)))), flag)


def _slot(seq: int, offset: int) -> bytes:
    head = struct.pack("<IQ", seq, offset)
    return head + struct.pack("<I", zlib.crc32(head))


def _read_commit(header: bytes) -> tuple[int, int]:
    """(commit sequence, committed offset) from a segment header; (0, HEADER) when none."""
    best = (0, HEADER)
    for index in range(2):
        at = _SLOTS_AT + index * _SLOT.size
        chunk = header[at : at + _SLOT.size]
        if len(chunk) < _SLOT.size:
            continue
        seq, offset, crc = _SLOT.unpack(chunk)
        if crc == zlib.crc32(chunk[:12]) and seq > best[0] and offset >= HEADER:
            best = (seq, offset)
    return best


def _parse(data: bytes, start: int, limit: int) -> tuple[list[Found], int, bool]:
    """Records in `data` (read at file offset `start`): [(payload, end offset, flags)].

    Returns the records, the offset after the last whole one, and True when a torn or corrupt
    record stopped the parse (rather than the end of the data).
    """
    out: list[Found] = []
    pos = 0
    size = len(data)
    head = _REC.size
    while pos + head <= size:
        length, crc, flags = _REC.unpack_from(data, pos)
        end = pos + head + length
        if length > _MAX_RECORD or start + end > limit:
            return out, start + pos, start + end > limit or length > _MAX_RECORD
        if end > size:
            return out, start + pos, False  # whole on disk, not in this chunk
        payload = data[pos + head : end]
        if zlib.crc32(payload, zlib.crc32(data[pos + 8 : pos + 9])) != crc:
            return out, start + pos, True
        out.append((payload, start + end, flags))
        pos = end
    torn = start + pos < limit and start + pos + head > limit
    return out, start + pos, torn


class Segment:
    """One segment file open for reading (and for appending, when it is ours and active)."""

    __slots__ = (
        "commit_seq",
        "committed",
        "committed_records",
        "dead",
        "fd",
        "hwm",
        "owner",
        "path",
        "read",
        "records",
        "seq",
        "size",
    )

    def __init__(self, path: str, fd: int, owner: str, seq: int) -> None:
        self.path = path
        self.fd = fd
        self.owner = owner
        self.seq = seq
        self.size = HEADER  # end of the valid records
        self.committed = HEADER  # records before this offset are delivered
        self.read = HEADER  # records before this offset were handed out for sending
        self.hwm = HEADER  # records before this were written once (the writer moves it)
        self.records = 0  # valid records in the file
        self.committed_records = 0
        self.commit_seq = 0
        self.dead = False

    @classmethod
    def create(cls, path: str, owner: str, seq: int) -> Segment:
        """A new, empty segment file (it must not exist)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.pwrite(fd, MAGIC + _slot(0, HEADER) + _slot(0, HEADER), 0)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return cls(path, fd, owner, seq)

    @classmethod
    def scan(cls, path: str, owner: str, seq: int, torn: Callable[[], None]) -> Segment | None:
        """An existing segment (left by another process), its valid end and records counted;
        `torn()` is called when a bad header or a torn tail is found. None when unreadable."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            segment = cls(path, fd, owner, seq)
            segment._scan(os.fstat(fd).st_size, torn)
            return segment
        except OSError:
            os.close(fd)
            return None

    def _scan(self, file_size: int, torn: Callable[[], None]) -> None:
        fd = self.fd
        header = os.pread(fd, HEADER, 0)
        if len(header) < HEADER or not header.startswith(MAGIC):
            torn()
            self.size = self.committed = HEADER
            return
        self.commit_seq, committed = _read_commit(header)
        # find the valid end and count the records (before and after the commit)
        pos = HEADER
        bad = False
        while pos < file_size:
            data = os.pread(fd, min(_READ_CHUNK, file_size - pos), pos)
            records, end, bad = _parse(data, pos, file_size)
            if not records and not bad and end == pos and data:
                length = _REC.unpack_from(data, 0)[0] + _REC.size
                data = os.pread(fd, length, pos)
                records, end, bad = _parse(data, pos, file_size)
            for _, rec_end, _ in records:
                self.records += 1
                if rec_end <= committed:
                    self.committed_records += 1
            pos = end
            if bad or not records:
                break
        if bad or pos < file_size:
            torn()
        self.size = pos
        self.committed = min(committed, pos)
        self.read = self.hwm = self.committed

    def append(self, data: bytes, *, fsync: bool) -> None:
        """Write encoded records at the end (fsync'ed when asked)."""
        view = memoryview(data)
        offset = self.size
        while view:
            written = os.pwrite(self.fd, view, offset)
            view = view[written:]
            offset += written
        self.size = offset
        if fsync:
            os.fsync(self.fd)

    def next_records(self, budget: int) -> list[Found]:
        """Whole records from the read offset on, about `budget` bytes (at least one when
        there is one); [] when none can be parsed."""
        want = min(max(budget, _READ_CHUNK), self.size - self.read)
        data = os.pread(self.fd, want, self.read)
        records, end, _ = _parse(data, self.read, self.size)
        if not records and end == self.read and len(data) < self.size - self.read:
            # one record longer than the chunk: read exactly that much
            length = _REC.unpack_from(data, 0)[0] + _REC.size
            data = os.pread(self.fd, length, self.read)
            records, end, _ = _parse(data, self.read, self.size)
        return records

    def commit(self, end: int, records: int) -> None:
        """Records up to offset `end` (`records` more of them) are delivered: note it on disk,
        in the slot the previous commit did not use."""
        self.committed = end
        self.committed_records += records
        self.commit_seq += 1
        with contextlib.suppress(OSError):
            os.pwrite(
                self.fd,
                _slot(self.commit_seq, end),
                _SLOTS_AT + (self.commit_seq % 2) * _SLOT.size,
            )
