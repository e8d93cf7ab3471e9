"""The query language compiled (collector/query/compile.py) and run on a real store: the
answers, parameterised SQL whatever the text, the SQL and the Python predicate agreeing, and
the bound on the rows a predicate examines."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.query import T0, record
from syslogkit import Facility, SDElement, Severity
from syslogkit.collector import Filters, Store
from syslogkit.collector.query import Plan, QueryError, compile_query, parse_query
from syslogkit.collector.query.compile import _predicate, _sql
from syslogkit.collector.query.language import And, Exists, Field, Node, Not, Or, Text

CORPUS = [
    record(0, "GET /cart took 12ms status=200", sd=(SDElement("order@32473", (("id", "42"),)),)),
    record(1, "GET /pay took 900ms status=500", severity=Severity.ERR),
    record(2, "disk almost full", host="db1", app="postgres", severity=Severity.WARNING),
    record(
        3,
        "order placed; it's done",
        sd=(
            SDElement("order@32473", (("id", "43"), ("id", "44"))),
            SDElement("meta", (("sequenceId", "150"),)),
        ),
    ),
    record(4, "connection reset by peer", host=None, peer="[2001:db8::1]:514", transport="tls"),
    record(
        5,
        "x'; DROP TABLE messages; --",
        severity=Severity.CRIT,
        sd=(SDElement("meta", (("sequenceId", "7"),)),),
    ),
    record(6, "Timeout waiting for upstream", host="web2", peer="192.168.1.9:1000"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(tmp_path_factory.mktemp("q") / "q.db")
    s.insert(CORPUS)
    s.commit()
    yield s
    s.close()


def ids(store: Store, text: str, *, now: float = T0 + 3600) -> list[int]:
    plan = compile_query(parse_query(text), now=now)
    found = plan.iter_records(store.iter_query(plan.filters, newest_first=True))
    return sorted((r.id or 0) - 1 for r in found)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("took", [0, 1]),
        ('"almost full"', [2]),
        ("GET -pay", [0]),
        ("reset OR full", [2, 4]),
        ("NOT host:web1", [2, 4, 6]),  # no HOSTNAME is not web1
        ("host:web*", [0, 1, 3, 5, 6]),
        ("app:postgres", [2]),
        ("procid:4703", [3]),
        ("msgid:ID6", [6]),
        ("facility:auth", [1, 3, 5]),
        ("severity:<=err", [1, 5]),
        ("severity:warning..err", [1, 2]),
        ("transport:tls", [4]),
        ("peer:10.0.0.0/8", [0, 1, 2, 3, 5]),
        ("peer:2001:db8::/32", [4]),
        ("peer:192.168.1.9", [6]),
        ("_time:10m", []),
        ("_time:1h", [0, 1, 2, 3, 4, 5, 6]),
        ("_time:59m", [1, 2, 3, 4, 5, 6]),
        ("_time:[2026-12-01T10:02:00Z, 2026-12-01T10:04:00Z)", [2, 3]),
        ("_time:>=2026-12-01T10:05:00Z", [5, 6]),
        ('msg:~"took [0-9]{3,}ms"', [1]),
        ("procid:>=4705", [5, 6]),
        ("order@32473.id:42", [0]),
        ("order@32473.id:44", [3]),
        ("meta.sequenceId:>100", [3]),
        ("exists(origin@32473)", []),
        ("exists(meta)", [3, 5]),
        ("-exists(meta) host:web1", [0, 1]),
        ("order@32473.id:42 OR app:postgres", [0, 2]),
        ("status:parsed", [0, 1, 2, 3, 4, 5, 6]),
        ('"x\'; DROP TABLE messages; --"', [5]),
        ("DROP", [5]),
        ("time*", [6]),
        ("--", [0, 1, 2, 3, 4, 5, 6]),
        ('"  ;  "', []),
    ],
)
def test_expression_finds_the_records_it_names(store: Store, text: str, want: list[int]) -> None:
    assert ids(store, text) == want


def test_values_are_parameters_never_sql_text(store: Store) -> None:
    hostile = "a'); DELETE FROM messages; --"
    plan = compile_query(parse_query(f'host:"{hostile}" OR {hostile[:2]} OR app:x*'))
    where, args = plan.filters.where()
    assert hostile not in where and "DELETE" not in where
    assert hostile in args
    assert list(store.iter_query(plan.filters)) == []
    assert store.count() == len(CORPUS)


def test_sql_cannot_say_goes_to_a_predicate_with_an_sd_prefilter() -> None:
    plan = compile_query(parse_query("host:web1 order@32473.id:42"))
    where, args = plan.filters.where()
    assert "hostname = ?" in where and "sd LIKE ?" in where and "%order@32473%" in args
    assert plan.predicate is not None
    assert compile_query(parse_query("host:web1 took")).predicate is None


def test_a_predicate_stops_at_its_bound_and_says_so(store: Store) -> None:
    plan = compile_query(parse_query('msg:~"never matches$^"'))
    plan.max_examined = 3
    found = list(plan.iter_records(store.iter_query(plan.filters, newest_first=True)))
    assert found == [] and plan.truncated and plan.examined == 3
    whole = compile_query(parse_query('msg:~"."'))
    assert len(list(whole.iter_records(store.iter_query(whole.filters)))) == len(CORPUS)
    assert not whole.truncated


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("severity:loud", "severity:loud"),
        ("status:broken", "status must be one of"),
        ("procid:>=many", "a comparison takes a number"),
        ("_time:[yesterday, today)", "not a time"),
    ],
)
def test_values_the_store_cannot_take_are_query_errors(text: str, said: str) -> None:
    with pytest.raises(QueryError, match=said):
        compile_query(parse_query(text))


def test_flags_filters_and_the_expression_give_the_same_rows(store: Store) -> None:
    """Today's `Filters` (the web's and `tail`'s path) and the language select alike."""
    pairs = [
        (Filters(hosts=("web1", "db1")), "host:web1 OR host:db1"),
        (Filters(severity=int(Severity.WARNING), apps=("postgres",)), "severity:<=4 app:postgres"),
        (Filters(search="took"), "took"),
        (Filters(facilities=(int(Facility.AUTH),)), "facility:auth"),
        (Filters(transports=("tls",)), "transport:tls"),
        (Filters(since=T0 + 120, until=T0 + 300), f"_time:>={T0 + 120!r} _time:<{T0 + 300!r}"),
        (Filters(status="parsed"), "status:parsed"),
    ]
    for filters, text in pairs:
        by_flags = [r.id for r in store.iter_query(filters)]
        plan = compile_query(parse_query(text))
        assert [r.id for r in plan.iter_records(store.iter_query(plan.filters))] == by_flags, text


# -- SQL and Python agree ------------------------------------------------------------------------

_leaves = st.sampled_from(
    [
        Text("took"),
        Text("full", phrase=True),
        Text("ti", prefix=True),
        Text("GET /pay", phrase=True),
        Text(";"),
        Field("host", "=", "web1"),
        Field("host", "prefix", "web"),
        Field("app", "=", "postgres"),
        Field("severity", "<=", "err"),
        Field("severity", "range", "warning", "info"),
        Field("facility", "=", "auth"),
        Field("transport", "=", "tls"),
        Field("msgid", "exists"),
        Exists("host"),
        Field("_time", "time", "4m"),
        Field("_time", "span", "2026-12-01T10:01:00Z", "2026-12-01T10:03:00Z", closed=True),
        Field("status", "=", "parsed"),
    ]
)
_trees = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
    ),
    max_leaves=6,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_trees)
def test_sql_and_the_python_predicate_agree(store: Store, tree: Node) -> None:
    now = T0 + 600
    sql = _sql(tree, now)
    assert sql is not None
    by_sql = [r.id for r in store.iter_query(Filters(extra_where=[sql]))]
    test = _predicate(tree, now)
    by_python = [r.id for r in store.iter_query() if test(r)]
    assert by_sql == by_python


def test_plan_without_expression_selects_everything(store: Store) -> None:
    plan = compile_query(None)
    assert isinstance(plan, Plan) and plan.predicate is None
    assert len(list(store.iter_query(plan.filters))) == len(CORPUS)


def test_the_store_file_is_untouched_by_any_expression(store: Store, tmp_path: Path) -> None:
    for text in ["'", '";', "a' OR 1=1 --", "host:\"' OR ''='\"", "\x01\x02", "ü" * 300]:
        try:
            ids(store, text)
        except QueryError as exc:
            assert exc.column >= 1
    con = sqlite3.connect(f"file:{store.files()[0].path}?mode=ro", uri=True)
    assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == len(CORPUS)
    con.close()
