"""Routes (collector/routes.py): every kind of match, final, drop, and the pipeline's split."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from support.collector import Capture
from syslogkit.collector import CollectorThread
from syslogkit.collector.decode import parse_frame
from syslogkit.collector.pipeline import Pipeline
from syslogkit.collector.record import FROM_ROW, Record
from syslogkit.collector.routes import RouteError, Router, compile_routes
from syslogkit.collector.store import make_row


def rec(
    text: str,
    *,
    peer: str = "192.0.2.7:5000",
    listener: str = "udp://127.0.0.1:5514",
    from_row: bool = False,
) -> Record:
    raw = text.encode()
    message, error, msg_bytes = parse_frame(raw)
    record = Record(
        raw=raw,
        received_at=1.0,
        transport="udp",
        peer=peer,
        listener=listener,
        message=message,
        error=error,
        msg_bytes=msg_bytes,
    )
    if not from_row:
        return record
    return Record(
        raw=raw,
        received_at=1.0,
        transport="udp",
        peer=peer,
        listener=listener,
        message=FROM_ROW,
        error=error,
        row=make_row(record),
    )


SINKS = ["a", "b", "c"]


def router(*routes: dict[str, Any], listeners: list[str] | None = None) -> Router:
    compiled = compile_routes(list(routes), SINKS, listeners)
    assert compiled is not None
    return compiled


def goes(r: Router, record: Record) -> list[str]:
    return [SINKS[i] for i in r.targets(record)]


def matches(match: dict[str, Any], record: Record) -> bool:
    return goes(router({"match": match, "sinks": ["a"]}), record) == ["a"]


AUTH_ERR = "<35>1 2026-01-01T00:00:00Z web-01 sshd 42 LOGIN - failed password"  # auth.err
LOCAL3_DEBUG = "<159>1 2026-01-01T00:00:00Z db-2 postgres - Q7 - slow query"  # local3.debug
BSD_CRON = "<78>Jan  1 00:00:00 web-02 CRON[1]: job done"  # cron.info, RFC 3164


@pytest.mark.parametrize("from_row", [False, True], ids=["message", "row"])
def test_every_match_kind(from_row: bool) -> None:
    auth = rec(AUTH_ERR, from_row=from_row)
    debug = rec(LOCAL3_DEBUG, peer="[2001:db8::5]:9", from_row=from_row)
    cron = rec(
        BSD_CRON, peer="[::ffff:10.1.2.3]:7", listener="tcp://127.0.0.1:6000", from_row=from_row
    )
    garbage = rec("\x00not syslog at all", from_row=from_row)
    cases: list[tuple[dict[str, Any], list[Record]]] = [
        ({"facility": "auth"}, [auth]),
        ({"facility": ["cron", 4]}, [auth, cron]),
        ({"facility": "local0..local7"}, [debug]),
        ({"severity": "..err"}, [auth]),
        ({"severity": "info..debug"}, [debug, cron]),
        ({"severity": [7]}, [debug]),
        ({"host": "web-01"}, [auth]),
        ({"host": "web-*"}, [auth, cron]),
        ({"host": ["db-?", "nope"]}, [debug]),
        ({"app": "CRON"}, [cron]),
        ({"app": "[ps]*"}, [auth, debug]),
        ({"msgid": "Q7"}, [debug]),
        ({"peer": "192.0.2.0/24"}, [auth, garbage]),
        ({"peer": "2001:db8::/32"}, [debug]),
        ({"peer": ["10.0.0.0/8"]}, [cron]),  # an IPv4-mapped IPv6 peer is its IPv4 address
        ({"listener": "tcp"}, [cron]),
        ({"msg": r"(?i)FAILED|slow"}, [auth, debug]),
        ({"facility": "auth", "severity": "err"}, [auth]),
        ({"all": [{"host": "web-*"}, {"severity": "info"}]}, [cron]),
        ({"any": [{"app": "sshd"}, {"msgid": "Q7"}]}, [auth, debug]),
        ({"not": {"host": "web-*"}}, [debug, garbage]),
        ({}, [auth, debug, cron, garbage]),
    ]
    everyone = [auth, debug, cron, garbage]
    for match, expected in cases:
        r = router({"match": match, "sinks": ["a"]}, listeners=["udp", "tcp"])
        r.listener_names.update({"udp://127.0.0.1:5514": "udp", "tcp://127.0.0.1:6000": "tcp"})
        got = [x for x in everyone if r.targets(x)]
        assert got == expected, match
    if from_row:  # routing read the row: no message was built that no sink asked for
        assert all(x._message is FROM_ROW for x in everyone)


def test_a_record_goes_to_every_matching_route_until_final() -> None:
    r = router(
        {"match": {"facility": "auth"}, "sinks": ["a"]},
        {"match": {"severity": "..err"}, "sinks": ["b"], "final": True},
        {"sinks": ["c"]},
    )
    assert goes(r, rec(AUTH_ERR)) == ["a", "b"]  # final stops before the catch-all
    assert goes(r, rec(LOCAL3_DEBUG)) == ["c"]


def test_drop_stops_and_keeps_what_earlier_routes_gave_and_both_are_counted() -> None:
    r = router(
        {"match": {"app": "sshd"}, "sinks": ["a"]},
        {"match": {"severity": "debug"}, "drop": True},
        {"match": {"host": "web-*"}, "drop": True},
        {"match": {"facility": "kern"}, "sinks": ["b"]},
    )
    assert goes(r, rec(AUTH_ERR)) == ["a"]  # sshd to a, then dropped by host web-*
    assert goes(r, rec(LOCAL3_DEBUG)) == []  # dropped
    assert goes(r, rec("<13>1 - other app - - - user.notice")) == []  # no route: unrouted
    assert r.stats() == {"routes": 4, "dropped": 2, "unrouted": 1, "rate_limited": 0}


def test_no_routes_means_no_router_and_every_sink_gets_everything() -> None:
    assert compile_routes([], SINKS) is None
    sinks = [Capture(), Capture()]
    pipeline = Pipeline(sinks, commit_interval=0.001)
    pipeline.start()
    pipeline.submit([rec(AUTH_ERR), rec(LOCAL3_DEBUG)])
    assert pipeline.drain(5)
    pipeline.close()
    assert [len(s.records) for s in sinks] == [2, 2]


def test_the_pipeline_hands_each_sink_only_its_records_and_answers_after_all() -> None:
    sinks = [Capture(), Capture(), Capture()]
    r = router(
        {"match": {"facility": "auth"}, "sinks": ["a", "b"], "final": True},
        {"sinks": ["b"]},
    )
    pipeline = Pipeline(sinks, commit_interval=0.001, router=r)
    pipeline.start()
    answered = threading.Event()
    batch = [rec(AUTH_ERR), rec(LOCAL3_DEBUG), rec(BSD_CRON), rec(AUTH_ERR)]
    pipeline.submit(batch, lambda ok: ok and answered.set())
    assert pipeline.drain(5) and answered.is_set()
    pipeline.close()
    assert sinks[0].records == [batch[0], batch[3]]
    assert sinks[1].records == batch  # order kept, each record once
    assert sinks[2].records == []
    assert pipeline.stats.committed == 4


@pytest.mark.parametrize(
    ("route", "path", "message"),
    [
        ({"sinks": ["nowhere"]}, (0, "sinks"), "no sink named 'nowhere'"),
        ({"match": {"severity": "loud"}, "sinks": ["a"]}, (0, "match", "severity"), "loud"),
        (
            {"match": {"facility": "local7..local0"}, "sinks": ["a"]},
            (0, "match", "facility"),
            "empty",
        ),
        ({"match": {"peer": "10.0.0.0/33"}, "sinks": ["a"]}, (0, "match", "peer"), "10.0.0.0/33"),
        ({"match": {"msg": "("}, "sinks": ["a"]}, (0, "match", "msg"), "regular expression"),
        ({"match": {"colour": "red"}, "sinks": ["a"]}, (0, "match", "colour"), "unknown test"),
        ({"match": {"not": {"host": 5}}, "sinks": ["a"]}, (0, "match", "not", "host"), "string"),
        ({"match": {}}, (0,), "needs sinks"),
        ({"drop": True, "sinks": ["a"]}, (0, "sinks"), "not both"),
        ({"sinks": ["a"], "fianl": True}, (0, "fianl"), "unknown key"),
        ({"match": {"listener": "x"}, "sinks": ["a"]}, (0, "match", "listener"), "no listener"),
    ],
)
def test_a_bad_route_is_refused_with_its_place(
    route: dict[str, Any], path: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(RouteError) as caught:
        compile_routes([route], SINKS, ["udp"])
    assert caught.value.path == path
    assert message in caught.value.message


def test_routes_by_listener_name_in_a_running_collector(tmp_path: Path) -> None:
    import socket

    sinks = [Capture(), Capture()]
    r = compile_routes(
        [{"match": {"listener": "one"}, "sinks": ["first"], "final": True}, {"sinks": ["second"]}],
        ["first", "second"],
        ["one", "two"],
    )
    assert r is not None
    with CollectorThread(["udp://127.0.0.1:0", "udp://127.0.0.1:0"], sinks, router=r) as c:
        urls = c.collector.urls
        r.listener_names.update({urls[0]: "one", urls[1]: "two"})
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            texts = (b"<13>1 - h a - - - to one", b"<13>1 - h a - - - to two")
            for url, text in zip(urls, texts, strict=True):
                s.sendto(text, ("127.0.0.1", int(url.rsplit(":", 1)[1])))
        got = sinks[0].arrived(1), sinks[1].arrived(1)
    assert [x.message.msg for x in got[0]] == ["to one"]  # type: ignore[union-attr]
    assert [x.message.msg for x in got[1]] == ["to two"]  # type: ignore[union-attr]


def test_values_of_the_config_are_data_never_code() -> None:
    hostile = 'x" or True or "'
    r = router({"match": {"host": hostile, "msg": "' or True or '"}, "sinks": ["a"]})
    assert goes(r, rec(AUTH_ERR)) == []
    assert goes(r, rec(f"<13>1 - {hostile.replace(' ', '_')} a - - - m")) == []


class Closing(Capture):
    closed = False

    def close(self) -> None:
        self.closed = True


def test_reconfigure_takes_effect_where_it_was_asked_for_in_the_queue() -> None:
    old, kept, new = Closing(), Closing(), Closing()
    pipeline = Pipeline([old, kept], commit_interval=5)  # not started: everything queues
    before, after = rec(AUTH_ERR), rec(LOCAL3_DEBUG)
    pipeline.submit([before])
    assert not pipeline.reconfigure([kept, new], None, timeout=0)  # queued, not applied yet
    pipeline.submit([after])
    pipeline.start()
    assert pipeline.drain(5)
    assert old.records == [before] and old.closed  # drained, then closed
    assert kept.records == [before, after] and not kept.closed
    assert new.records == [after]
    pipeline.close()
    assert pipeline.stats.committed == 2


def test_a_rate_limit_per_source_drops_the_excess_counts_and_tells_it() -> None:
    told: list[str] = []
    r = compile_routes(
        [
            {"match": {"facility": "auth"}, "sinks": ["a"], "rate_limit": 5, "final": True},
            {"sinks": ["b"]},
        ],
        SINKS,
        tell=told.append,
    )
    assert r is not None
    noisy = [rec(AUTH_ERR, peer=f"10.0.0.1:{1000 + i}") for i in range(20)]  # one host
    quiet = [rec(AUTH_ERR, peer="10.0.0.2:9") for _ in range(3)]
    parts = r.split(noisy + quiet)
    assert len(parts[0]) == 5 + 3  # a burst of one second's worth per source
    assert parts[1] == []  # final: the excess does not fall through to the next route
    assert r.stats() == {"routes": 2, "dropped": 0, "unrouted": 0, "rate_limited": 15}
    assert told == [
        "route 1: over its rate limit of 5 records/s per source, dropped 1 (the first; told"
        " again at most every 10 s): 1 from 10.0.0.1; 1 in all"
    ]
    r.tell_untold()
    assert told[-1] == (
        "route 1: over its rate limit of 5 records/s per source, dropped 14 since the last"
        " line: 14 from 10.0.0.1; 15 in all"
    )
    time.sleep(0.25)  # the bucket fills again at 5 a second
    assert len(r.split([rec(AUTH_ERR, peer="10.0.0.1:1")])[0]) == 1


def test_a_bad_rate_limit_is_refused() -> None:
    with pytest.raises(RouteError, match="records a second"):
        compile_routes([{"sinks": ["a"], "rate_limit": 0}], SINKS)


class Flaky(Closing):
    """Fails its first `fails` writes."""

    def __init__(self, fails: int) -> None:
        super().__init__()
        self.fails = fails

    def write(self, records: Sequence[Record]) -> None:
        if self.fails:
            self.fails -= 1
            raise OSError("disk full")
        super().write(records)


def test_a_removed_sink_that_fails_is_drained_after_it_recovers_then_closed() -> None:
    flaky, kept = Flaky(fails=2), Closing()
    told: list[str] = []
    pipeline = Pipeline([flaky, kept], commit_interval=0.001, tell=told.append)
    first, second = rec(AUTH_ERR), rec(LOCAL3_DEBUG)
    pipeline.submit([first])
    pipeline.start()
    assert pipeline.reconfigure([kept], None, timeout=5)
    pipeline.submit([second])
    assert pipeline.drain(10)
    deadline = time.monotonic() + 5
    while not flaky.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flaky.records == [first] and flaky.closed  # retried, committed, then closed
    assert kept.records == [first, second] and not kept.closed
    pipeline.close()
    assert any("failed: OSError: disk full" in line for line in told)
