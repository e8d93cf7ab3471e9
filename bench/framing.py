"""Framing throughput, as ratios against minimal hand-written code measured in the same run.

    .venv/bin/python bench/framing.py

- decode: FrameDecoder splitting octet-counted frames from 64 KiB chunks (what a collector's
  data_received sees under load), against a bare loop that does only find/int/slice with no
  validation, no limits and no state across chunks (the ~800k frames/s asyncio figure of
  INTEROP.md is this kind of loop). Also LF-delimited frames and one-byte feeding.
- frame: frame() per record against the one-line ``b"%d %s" % (len(p), p)``.
Each candidate runs once per round, rounds interleaved, best round kept (the machine is shared:
noise only ever adds time). Nothing here is a pass/fail test.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from syslogkit.codec.framing import FrameDecoder, frame

MESSAGE = b"<134>1 2026-01-01T00:00:00.000000+00:00 host.example app 4242 - - request handled %06d"
N_FRAMES = 200_000
CHUNK = 65_536


def chunks(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def bare_octet_splitter(pieces: list[bytes]) -> int:
    """The least a splitter must do: find the SP, int(), slice; carry the tail."""
    count = 0
    buf = b""
    for piece in pieces:
        data = buf + piece if buf else piece
        pos = 0
        n = len(data)
        out = []
        while True:
            sp = data.find(b" ", pos, pos + 12)
            if sp < 0:
                break
            end = sp + 1 + int(data[pos:sp])
            if end > n:
                break
            out.append(data[sp + 1 : end])
            pos = end
        count += len(out)
        buf = data[pos:]
    return count


def decoder_run(framing: str) -> Callable[[list[bytes]], int]:
    def run(pieces: list[bytes]) -> int:
        decoder = FrameDecoder(framing)
        count = 0
        for piece in pieces:
            count += len(decoder.feed(piece))
        return count + len(decoder.end())

    return run


def best_rates(candidates: dict[str, Callable[[], int]], rounds: int = 7) -> dict[str, float]:
    """Items per second of each candidate: interleaved rounds, best round."""
    best = dict.fromkeys(candidates, float("inf"))
    items: dict[str, int] = {}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            items[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: items[name] / best[name] for name in candidates}


def framing_loop(fn: Callable[[bytes], bytes], payloads: list[bytes]) -> Callable[[], int]:
    def run() -> int:
        for p in payloads:
            fn(p)
        return len(payloads)

    return run


def main() -> None:
    payloads = [MESSAGE % i for i in range(N_FRAMES)]
    octet = chunks(b"".join(frame(p) for p in payloads), CHUNK)
    lf = chunks(b"".join(frame(p, "lf") for p in payloads), CHUNK)
    small = chunks(b"".join(frame(p) for p in payloads[:20_000]), 1)
    r = best_rates(
        {
            "bare": lambda: bare_octet_splitter(octet),
            "auto": lambda: decoder_run("auto")(octet),
            "octet": lambda: decoder_run("octet")(octet),
            "lf": lambda: decoder_run("auto")(lf),
            "bytewise": lambda: decoder_run("auto")(small),
        }
    )
    assert decoder_run("auto")(octet) == N_FRAMES == bare_octet_splitter(octet)
    assert decoder_run("auto")(lf) == N_FRAMES
    bare = r["bare"]
    print(f"frames of {len(payloads[0])} octets, {CHUNK}-octet chunks")
    print(f"  bare octet splitter (no checks)  {bare:>12,.0f} frames/s")
    for name, label in (
        ("auto", "FrameDecoder auto, octet frames"),
        ("octet", "FrameDecoder octet (forced)    "),
        ("lf", "FrameDecoder auto, LF frames   "),
    ):
        print(f"  {label}  {r[name]:>12,.0f} frames/s  ({r[name] / bare:.2f}x bare)")
    print(f"  FrameDecoder auto, 1-octet feeds {r['bytewise']:>12,.0f} frames/s")

    def one_liner(p: bytes) -> bytes:
        return b"%d %s" % (len(p), p)

    f = best_rates(
        {
            "base": framing_loop(one_liner, payloads),
            "octet": framing_loop(frame, payloads),
            "lf": framing_loop(lambda p: frame(p, "lf"), payloads),
        }
    )
    base = f["base"]
    for name, label in (
        ("base", "b'%d %s' one-liner"),
        ("octet", "frame(p)"),
        ("lf", "frame(p, 'lf')"),
    ):
        print(f"  {label:<32} {f[name]:>12,.0f} frames/s  ({f[name] / base:.2f}x one-liner)")


if __name__ == "__main__":
    main()
