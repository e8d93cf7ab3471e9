"""The query language's parser (collector/query/language.py): trees, errors with their column,
bounds, and round trips through `to_text`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syslogkit.collector.query import QueryError, parse_query, to_text
from syslogkit.collector.query.language import (
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Exists,
    Field,
    Node,
    Not,
    Or,
    Text,
)


def test_words_side_by_side_are_and_and_or_binds_looser() -> None:
    assert parse_query('disk full OR "no space" -tmp') == Or(
        (
            And((Text("disk"), Text("full"))),
            And((Text("no space", phrase=True), Not(Text("tmp")))),
        )
    )
    assert parse_query("a AND (b OR c)") == And((Text("a"), Or((Text("b"), Text("c")))))
    assert parse_query("NOT a") == Not(Text("a"))
    assert parse_query("err*") == Text("err", prefix=True)


def test_lowercase_operators_are_words() -> None:
    assert parse_query("a or b") == And((Text("a"), Text("or"), Text("b")))


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("host:web1", Field("host", "=", "web1")),
        ('app:"my app"', Field("app", "=", "my app")),
        ("procid:4711", Field("procid", "=", "4711")),
        ("msgid:ID47", Field("msgid", "=", "ID47")),
        ("facility:auth", Field("facility", "=", "auth")),
        ("severity:<=err", Field("severity", "<=", "err")),
        ("severity:warning..err", Field("severity", "range", "warning", "err")),
        ("transport:tls", Field("transport", "=", "tls")),
        ("peer:10.0.0.0/8", Field("peer", "=", "10.0.0.0/8")),
        ("tls_subject:CN=client*", Field("tls_subject", "prefix", "CN=client")),
        ("_time:1h", Field("_time", "time", "1h")),
        (
            "_time:[2026-12-01, 2026-12-02)",
            Field("_time", "span", "2026-12-01", "2026-12-02"),
        ),
        ("_time:>=2026-12-01", Field("_time", ">=", "2026-12-01")),
        ('host:~"^web[0-9]+$"', Field("host", "regex", "^web[0-9]+$")),
        ("order@32473.id:42", Field("order@32473.id", "=", "42")),
        ("meta.sequenceId:>100", Field("meta.sequenceId", ">", "100")),
        ("exists(origin@32473)", Exists("origin@32473")),
        ("exists(meta)", Exists("meta")),
        ("host:*", Field("host", "exists")),
    ],
)
def test_field_filters_parse_to_their_node(text: str, node: Node) -> None:
    assert parse_query(text) == node


@pytest.mark.parametrize(
    ("text", "column", "said"),
    [
        ("host:web1 AND (error", 21, "expected ')' to close the '(' at column 15"),
        ("a OR", 5, "expected a word"),
        ('msg "unclosed', 14, 'closing " for the string opened at column 5'),
        ("a )", 3, "')' without its '('"),
        ("bogus:1", 1, "unknown field 'bogus'"),
        ("host:", 6, "expected a value"),
        ('host:~"(a"', 8, "not a valid regex"),
        ("_time:yesterday", 7, "expected a duration"),
        ("_time:[2026-12-01", 7, "to close the time range"),
        ("severity:..err", 10, "expected a range LOW..HIGH"),
        ("a\0b", 2, "NUL"),
        ("exists(", 8, "expected a field name"),
    ],
)
def test_errors_say_the_column_and_what_was_expected(text: str, column: int, said: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert caught.value.column == column, caught.value
    assert said in str(caught.value)


def test_length_and_nesting_are_bounded() -> None:
    assert parse_query("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == Text("a")
    with pytest.raises(QueryError, match="nested deeper than"):
        parse_query("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(QueryError, match="nested deeper than"):
        parse_query("-" * 1000 + "a")
    with pytest.raises(QueryError, match="longer than") as caught:
        parse_query("a " * MAX_LENGTH)
    assert caught.value.column == 1


def test_hostile_text_is_words_or_a_clear_error() -> None:
    assert parse_query("x'; DROP TABLE messages; --") == And(
        (Text("x';"), Text("DROP"), Text("TABLE"), Text("messages;"), Not(Text("-")))
    )
    assert parse_query('host:"a\\"b"') == Field("host", "=", 'a"b')


# -- properties ----------------------------------------------------------------------------------

_words = st.text(alphabet="abcxyz019_.é", min_size=1, max_size=6).filter(
    lambda w: w not in ("AND", "OR", "NOT") and not w.startswith("-")
)
_values = st.text(alphabet=st.characters(blacklist_characters="\0"), max_size=8)
_names = st.sampled_from(["host", "app", "msgid", "order@32473.id", "meta.sequenceId"])
_leaves = st.one_of(
    st.builds(Text, _words),
    st.builds(Text, _values.filter(bool), phrase=st.just(True)),
    st.builds(Text, _words, prefix=st.just(True)),
    st.builds(Field, _names, st.just("="), _values),
    st.builds(Field, _names, st.just("prefix"), _words),
    st.builds(Field, _names, st.sampled_from([">", ">=", "<", "<="]), _values.filter(bool)),
    st.builds(Field, _names, st.just("range"), _words.filter(lambda w: "." not in w), _words),
    st.builds(Field, _names, st.just("regex"), st.sampled_from(["^a", "b+$", r"\d{3}"])),
    st.builds(Exists, _names),
)
_trees = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(_trees)
def test_to_text_parses_back_to_the_same_tree(tree: Node) -> None:
    assert parse_query(to_text(tree)) == tree


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab :()"-*~.@[],<>=|\\\0ORNDTe_xist')), max_size=60))
def test_any_text_parses_or_raises_query_error(text: str) -> None:
    try:
        tree = parse_query(text)
    except QueryError as exc:
        assert 1 <= exc.column <= max(len(text), 0) + 1
        return
    assert parse_query(to_text(tree)) == tree
