"""Byte-level text rules shared by the formatters."""

from __future__ import annotations

__all__ = ["cut_utf8"]


def cut_utf8(data: bytes, size: int) -> bytes:
    """At most `size` bytes of UTF-8 `data`, never ending inside a multi-byte sequence."""
    if len(data) <= size:
        return data
    while size > 0 and (data[size] & 0xC0) == 0x80:  # data[size] is the first byte left out
        size -= 1
    return data[:size]
