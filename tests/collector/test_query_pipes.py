"""The pipes of a query (collector/query/pipes.py) over records of a real store: stats, top,
sort, limit, fields, the parsing pipes and filters on what they extract, and their bounds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.query import T0, record
from syslogkit import Severity
from syslogkit.collector import Store
from syslogkit.collector.query import QueryError, compile_query
from syslogkit.collector.query import pipes as pipes_module
from syslogkit.collector.query.language import (
    Aggregate,
    Extract,
    Fields,
    Json,
    Limit,
    Logfmt,
    Query,
    Sort,
    Stats,
    Text,
    Top,
    parse,
    query_text,
)
from syslogkit.collector.query.pipes import Pipeline, json_fields, logfmt

CORPUS = [
    record(0, "GET /a took=12ms status=200", host="web1", app="shop"),
    record(1, "GET /b took=900ms status=500", host="web1", app="shop", severity=Severity.ERR),
    record(2, "GET /c took=40ms status=503", host="web2", app="shop", severity=Severity.ERR),
    record(3, 'job done {"user": {"id": 7}, "ms": 250, "tags": ["a"]}', host="db1", app="cron"),
    record(4, 'level=warn msg="disk almost full" pct=97', host="db1", app="postgres"),
    record(5, "no fields here", host="web2", app="shop"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(tmp_path_factory.mktemp("p") / "p.db")
    s.insert(CORPUS)
    s.commit()
    yield s
    s.close()


def run(store: Store, text: str, **kw: Any) -> list[dict[str, Any]]:
    query = parse(text)
    plan = compile_query(query.filter, now=T0 + 3600)
    pipeline = Pipeline(query.pipes, T0 + 3600, **kw)
    records = plan.iter_records(store.iter_query(plan.filters, newest_first=True))
    columns = pipeline.columns
    out = []
    for row in pipeline.run(records):
        if columns is None:
            out.append({"msgid": row.get("msgid"), **row.fields})
        else:
            out.append({c: pipes_module.display(row.get(c)) for c in columns})
    return out


def test_stats_count_by_field(store: Store) -> None:
    assert run(store, "| stats count() by (host)") == [
        {"host": "db1", "count()": 2},
        {"host": "web1", "count()": 2},
        {"host": "web2", "count()": 2},
    ]
    assert run(store, "app:shop | stats by (severity) count() as n") == [
        {"severity": "err", "n": 2},
        {"severity": "info", "n": 2},
    ]
    assert run(store, "nothing_matches_this | stats count()") == [{"count()": 0}]


def test_stats_functions_over_extracted_numbers(store: Store) -> None:
    [row] = run(
        store,
        '| extract "took=<ms>ms" | stats count(), count_distinct(host), min(ms), max(ms),'
        " avg(ms), sum(ms), quantile(0.5, ms)",
    )
    assert row == {
        "count()": 6,
        "count_distinct(host)": 3,
        "min(ms)": 12,
        "max(ms)": 900,
        "avg(ms)": pytest.approx(317.3333),
        "sum(ms)": 952,
        "quantile(0.5, ms)": 40,
    }


def test_top_sort_limit_fields(store: Store) -> None:
    assert run(store, "| top 2 by (app)") == [
        {"app": "shop", "count": 4},
        {"app": "cron", "count": 1},
    ]
    assert run(
        store, '| extract "took=<ms>ms" | sort by (ms) desc | limit 2 | fields msgid, ms'
    ) == [
        {"msgid": "ID1", "ms": "900"},
        {"msgid": "ID2", "ms": "40"},
    ]
    assert [r["msgid"] for r in run(store, "| sort by (procid) | limit 3")] == ["ID0", "ID1", "ID2"]


def test_logfmt_then_filter_on_what_it_found(store: Store) -> None:
    """`status` is the message's once logfmt found it (the parse status otherwise)."""
    assert [r["msgid"] for r in run(store, "| logfmt | status:>=500")] == ["ID2", "ID1"]
    assert run(store, "host:db1 | logfmt | level:warn") == [
        {"msgid": "ID4", "level": "warn", "msg": "disk almost full", "pct": "97"}
    ]
    assert [r["msgid"] for r in run(store, "| logfmt | -took:*")] == ["ID5", "ID4", "ID3"]


def test_json_flattens_objects_and_keeps_lists_as_text(store: Store) -> None:
    assert run(store, "| json | user.id:7") == [
        {"msgid": "ID3", "user.id": 7, "ms": 250, "tags": '["a"]'}
    ]
    assert run(store, "| json | ms:>100 | fields host, ms") == [{"host": "db1", "ms": 250}]


def test_each_pipe_is_bounded_and_says_so(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline_rows = run(store, "| stats count()", max_rows=4)
    assert pipeline_rows == [{"count()": 4}]
    monkeypatch.setattr(pipes_module, "MAX_GROUPS", 2)
    query = parse("| stats count() by (procid)")
    pipeline = Pipeline(query.pipes, T0)
    rows = list(pipeline.run(CORPUS))
    assert len(rows) == 2 and sum(r.get("count()") for r in rows) == 2
    assert any("more than 2 groups" in note for note in pipeline.notes)
    monkeypatch.setattr(pipes_module, "MAX_FIELDS", 3)
    assert len(logfmt("a=1 b=2 c=3 d=4 e=5")) == 3


def test_logfmt_and_json_take_any_text() -> None:
    assert logfmt('a="x \\" y" b= c=3 =4 plain') == {"a": 'x " y', "b": "", "c": "3"}
    assert json_fields("prefix {not json") == {}
    assert json_fields("[1, 2]") == {}
    assert json_fields("{" * 100_000) == {}


@pytest.mark.parametrize(
    ("text", "column", "said"),
    [
        ("a | stats", 10, "expected count()"),
        ("| stats count(x)", 9, "count() takes nothing"),
        ("| stats avg()", 9, "the others take a field"),
        ("| top 5", 8, "expected by"),
        ("| limit many", 9, "expected how many rows"),
        ("| sort by (a", 13, "expected ',' or ')'"),
        ('| extract "no holes"', 11, "needs a <name> hole"),
        ("| logfmt extra", 10, "expected '|' or the end"),
        ("|", 2, "expected a pipe"),
    ],
)
def test_pipe_errors_say_the_column(text: str, column: int, said: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(text)
    assert caught.value.column == column, caught.value
    assert said in str(caught.value)


_names = st.sampled_from(["host", "app", "ms", "order@32473.id"])
_pipes = st.one_of(
    st.builds(
        Stats,
        st.lists(
            st.one_of(
                st.just(Aggregate("count")),
                st.builds(Aggregate, st.sampled_from(["min", "max", "avg", "sum"]), _names),
                st.builds(Aggregate, st.just("quantile"), _names, st.just("0.99")),
                st.builds(Aggregate, st.just("count"), alias=st.just("n")),
            ),
            min_size=1,
            max_size=3,
        ).map(tuple),
        st.lists(_names, max_size=2).map(tuple),
    ),
    st.builds(Top, st.integers(0, 50), st.lists(_names, min_size=1, max_size=2).map(tuple)),
    st.builds(Sort, st.lists(_names, min_size=1, max_size=2).map(tuple), st.booleans()),
    st.builds(Limit, st.integers(0, 1000)),
    st.builds(Fields, st.lists(_names, min_size=1, max_size=3).map(tuple)),
    st.just(Logfmt()),
    st.just(Json()),
    st.builds(Extract, st.sampled_from(['took <ms>ms "q"', "<_> id=<id>", "a\\b<x>"])),
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.just(Text("took"))), st.lists(_pipes, max_size=4).map(tuple))
def test_queries_with_pipes_read_back_from_their_text(
    node: Text | None, pipes: tuple[Any, ...]
) -> None:
    query = Query(node, pipes)
    assert parse(query_text(query)) == query


_pieces = [*'ab :(),|"<>*~.09', "stats ", "count()", "by ", "top ", "sort ", "limit ", "fields "]
_pieces += ["logfmt", "json", "extract ", "quantile(", "desc"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_pieces), max_size=20).map("".join))
def test_any_text_with_pipes_parses_or_raises_query_error(text: str) -> None:
    try:
        query = parse(text)
    except QueryError as exc:
        assert 1 <= exc.column <= len(text) + 1
        return
    assert parse(query_text(query)) == query


@pytest.mark.parametrize(
    "text",
    [
        "| stats count() by (host)",
        "| stats count() as n, count() by (severity, facility)",
        "app:shop | stats count()",
        "nothing_matches_this | stats count()",
        "| top 2 by (app) | sort by (app)",
        "took | top 10 by (host, severity) | limit 2",
        "| stats by (transport, peer) count()",
    ],
)
def test_counts_in_sql_give_the_rows_of_the_python_path(store: Store, text: str) -> None:
    query = parse(text)
    plan = compile_query(query.filter, now=T0)
    assert plan.predicate is None
    in_sql = Pipeline(query.pipes, T0)
    assert pipes_module.counts_in_sql(in_sql, exact=True)
    where, args = plan.filters.where()
    by_sql = [row.fields for row in pipes_module.run_counts(in_sql, store.files(), where, args)]
    by_python = [
        row.fields for row in Pipeline(query.pipes, T0).run(store.iter_query(plan.filters))
    ]
    assert by_sql == by_python


def test_counts_sql_cannot_do_stay_in_python() -> None:
    for text in [
        "| stats count_distinct(host)",
        "| stats count() by (msg)",
        "| logfmt | stats count()",
    ]:
        assert not pipes_module.counts_in_sql(Pipeline(parse(text).pipes, T0), exact=True)
    assert not pipes_module.counts_in_sql(Pipeline(parse("| stats count()").pipes, T0), exact=False)
