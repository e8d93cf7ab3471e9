"""RFC 5424 parsing speed, side by side in one run: msgs/s and ratios.

    .venv/bin/python bench/parse.py [--rounds N] [--seconds S]

Contenders, on the same messages (with and without STRUCTURED-DATA):
- syslog-rfc5424-parser (lark grammar; takes str, so its decode is timed too), if installed;
- the one-regex baseline: one compiled regex for the header plus a dict for SD, validating
  nothing and building no datetime or objects;
- syslogkit `parse_5424` in "strict", "best_effort" and "lenient" mode (full validation, aware
  datetime, Facility/Severity, SDElements, SyslogMessage), and `parse()` (which first tells
  RFC 5424 from RFC 3164) in strict and lenient mode.

Each round times every contender for about `--seconds` of CPU time (process time, so that other
load on a shared machine distorts less); contenders alternate within a round so that noise hits
them alike. Load on the machine only ever slows a round down, so the ratios use each contender's
best round; the median round is shown too. Targets (DESIGN.md):
strict with SD >= 0.7x the baseline and >= 25x syslog-rfc5424-parser; lenient >= 0.8x the baseline.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from syslogkit.codec.rfc5424 import format_5424, parse_5424

try:
    from syslogkit.codec.detect import parse
except ImportError:  # parse.py (auto-detect 3164/5424) not there yet
    parse = None  # type: ignore[assignment]

WITH_SD = (
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
    b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
    b'[examplePriority@32473 class="high"] An application event log entry...'
)
NO_SD = (
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - "
    b"An application event log entry..."
)

_HEADER = re.compile(
    r"<(\d{1,3})>(\d{1,3}) (\S+) (\S+) (\S+) (\S+) (\S+) "
    r'(-|(?:\[(?:[^"\]]++|"(?:[^"\\]++|\\.)*+")*+\])++)(?: (.*))?\Z',
    re.S,
)
_SD = re.compile(r'\[([^ \]]+)((?: [^=]+="(?:[^"\\]++|\\.)*+")*+)\]', re.S)
_PARAM = re.compile(r' ([^=]+)="((?:[^"\\]++|\\.)*+)"', re.S)


def baseline(data: bytes) -> dict[str, Any]:
    """One regex for the header, a dict for SD; no validation, no datetime, no objects."""
    m = _HEADER.match(data.decode("utf-8", "replace"))
    if m is None:
        raise ValueError("no match")
    pri, version, ts, hostname, app_name, procid, msgid, sd, msg = m.groups()
    sd_dict = {}
    if sd != "-":
        for sd_id, params in _SD.findall(sd):
            sd_dict[sd_id] = dict(_PARAM.findall(params))
    return {
        "pri": int(pri),
        "version": int(version),
        "timestamp": ts,
        "hostname": hostname,
        "app_name": app_name,
        "procid": procid,
        "msgid": msgid,
        "sd": sd_dict,
        "msg": msg,
    }


def contenders() -> dict[str, Callable[[bytes], object]]:
    found: dict[str, Callable[[bytes], object]] = {}
    try:
        from syslog_rfc5424_parser import SyslogMessage as PeerMessage  # type: ignore[import-untyped]
    except ImportError:
        print("syslog-rfc5424-parser not installed: pip install 'syslogkit[bench]'")
    else:
        found["syslog-rfc5424-parser"] = lambda data: PeerMessage.parse(data.decode("utf-8"))
    found["one-regex baseline"] = baseline
    found["syslogkit strict"] = lambda data: parse_5424(data)
    found["syslogkit best_effort"] = lambda data: parse_5424(data, "best_effort")
    found["syslogkit lenient"] = lambda data: parse_5424(data, "lenient")
    if parse is not None:
        found["syslogkit parse() strict"] = lambda data: parse(data)
        found["syslogkit parse() lenient"] = lambda data: parse(data, "lenient")
    return found


def calibrate(func: Callable[[Any], object], data: Any, seconds: float) -> int:
    """How many calls take about `seconds`."""
    n = 1
    while True:
        start = time.process_time()
        for _ in range(n):
            func(data)
        took = time.process_time() - start
        if took > 0.02:
            return max(1, int(n * seconds / took))
        n *= 4


def rate(func: Callable[[Any], object], data: Any, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        func(data)
    return n / (time.process_time() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=0.05, help="per contender per round")
    args = ap.parse_args()
    funcs = contenders()
    print(
        f"Python {sys.version.split()[0]}; {args.rounds} rounds of ~{args.seconds}s CPU time each; "
        "ratios from the best round\n"
    )
    for label, data in (("message with SD", WITH_SD), ("message without SD", NO_SD)):
        for func in funcs.values():
            func(data)  # every contender must accept the message
        counts = {name: calibrate(func, data, args.seconds) for name, func in funcs.items()}
        rounds: dict[str, list[float]] = {name: [] for name in funcs}
        for _ in range(args.rounds):
            for name, func in funcs.items():
                rounds[name].append(rate(func, data, counts[name]))
        best = {name: max(rates) for name, rates in rounds.items()}
        base = best["one-regex baseline"]
        peer = best.get("syslog-rfc5424-parser")
        print(f"{label} ({len(data)} bytes)")
        head = f"{'best msgs/s':>12s} {'median':>10s} {'x baseline':>11s} {'x peer':>7s}"
        print(f"  {'parser':24s} {head}")
        for name, value in best.items():
            vs_peer = f"{value / peer:7.1f}" if peer else f"{'-':>7s}"
            median = statistics.median(rounds[name])
            print(f"  {name:24s} {value:12,.0f} {median:10,.0f} {value / base:11.2f} {vs_peer}")
        if label == "message with SD":
            strict = best["syslogkit strict"]
            lenient = best["syslogkit lenient"]
            goals = [
                ("strict >= 0.7x baseline", strict / base, 0.7),
                ("lenient >= 0.8x baseline", lenient / base, 0.8),
            ]
            if peer:
                goals.append(("strict >= 25x syslog-rfc5424-parser", strict / peer, 25.0))
            for goal, got, want in goals:
                print(f"  target {goal}: {got:.2f} {'met' if got >= want else 'MISSED'}")
        print()

    parsed = parse_5424(WITH_SD)
    n = calibrate(format_5424, parsed, args.seconds)
    fmt = max(rate(format_5424, parsed, n) for _ in range(args.rounds))
    print(f"for reference: format_5424 of the message with SD {fmt:,.0f} msgs/s")


if __name__ == "__main__":
    main()
