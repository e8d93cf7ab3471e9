"""The query language's parser: text -> a tree of frozen nodes, and back (`to_text`).

Sans-I/O: no store, no clock (a relative `_time:1h` stays relative here; `compile` resolves it).

Decisions:

- A bare word or a "phrase" searches MSG's full-text index; words side by side must all match
  (AND is implied); `AND`, `OR`, `NOT` are operators only in capitals (a lowercase `or` is a
  word); `-x` is `NOT x`; parentheses group. OR binds looser than AND (as in SQL and LogsQL).
- `name:value` filters a field (`FIELDS`, or structured data as `SD-ID.param`, split at the
  last dot: an enterprise SD-ID such as `x@32473.1` holds dots itself); the value is one of
  `value` (equals), `"value"`, `prefix*`, `~"regex"`, `>N` `>=N` `<N` `<=N`, `A..B`
  (inclusive), `*` (present), and for `_time` a duration (`1h`) or `[start, end)`.
  `exists(name)` is `name:*`; `exists(SD-ID)` holds when the message has that element.
- Errors are `QueryError` with the 1-based `column` of the fault and what was expected there,
  as `ParseError.column` is for a message. Bounded: at most `MAX_LENGTH` characters and
  `MAX_DEPTH` levels of nesting (parentheses and NOT), a NUL is refused, a regex is compiled
  here (a bad one is an error at its column) and is at most `MAX_REGEX` characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "AGGREGATES",
    "FIELDS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "And",
    "Exists",
    "Field",
    "Node",
    "Not",
    "Or",
    "Query",
    "QueryError",
    "Text",
    "extract_regex",
    "parse",
    "parse_query",
    "query_text",
    "to_text",
]

#: the longest expression taken, in characters
MAX_LENGTH = 4096
#: how deep parentheses and NOT may nest
MAX_DEPTH = 32
#: the longest regex taken, in characters
MAX_REGEX = 512

#: the fields of a stored message, as the language names them -> the store's column
FIELDS: dict[str, str] = {
    "host": "hostname",
    "app": "app_name",
    "procid": "procid",
    "msgid": "msgid",
    "facility": "facility",
    "severity": "severity",
    "transport": "transport",
    "peer": "peer",
    "listener": "listener",
    "tls_subject": "tls_subject",
    "tls_fingerprint": "tls_fingerprint",
    "msg": "msg",
    "status": "error",
    "_time": "time",
}

#: the comparison operators, longest first (so `>=` is not read as `>` then `=500`)
_COMPARE = (">=", "<=", ">", "<")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d|w)\Z")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.@\-]*\Z")
#: what ends a bare word
_STOP = frozenset(' \t\r\n()"|')


class QueryError(ValueError):
    """An expression that does not parse: `column` (1-based) is where, the message says what
    was expected there."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.reason = message
        self.column = column


@dataclass(frozen=True)
class Text:
    """Full-text search in MSG: a word (`phrase=False`), or a phrase; `prefix`: `word*`."""

    text: str
    phrase: bool = False
    prefix: bool = False


@dataclass(frozen=True)
class Field:
    """`name:value`. `op` is one of `=`, `prefix`, `regex`, `>`, `>=`, `<`, `<=`, `range`
    (`value..high`, inclusive), `exists`, `time` (`value` a duration such as `1h`), `span`
    (`[value, high)`; `closed`: `]`)."""

    name: str
    op: str
    value: str = ""
    high: str = ""
    closed: bool = False


@dataclass(frozen=True)
class Exists:
    """`exists(name)`: the field, or the structured-data element or param, is present."""

    name: str


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Text | Field | Exists | Not | And | Or


@dataclass(frozen=True)
class Aggregate:
    """`func(field)` of `| stats`; `q`: quantile's; `alias`: `as name`."""

    func: str
    field: str = ""
    q: str = ""
    alias: str = ""

    @property
    def label(self) -> str:
        if self.alias:
            return self.alias
        if self.func == "quantile":
            return f"quantile({self.q}, {self.field})"
        return f"{self.func}({self.field})"


@dataclass(frozen=True)
class Stats:
    aggregates: tuple[Aggregate, ...]
    by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Top:
    n: int
    by: tuple[str, ...]


@dataclass(frozen=True)
class Sort:
    by: tuple[str, ...]
    desc: bool = False


@dataclass(frozen=True)
class Limit:
    n: int


@dataclass(frozen=True)
class Fields:
    names: tuple[str, ...]


@dataclass(frozen=True)
class Logfmt:
    pass


@dataclass(frozen=True)
class Json:
    pass


@dataclass(frozen=True)
class Extract:
    """`extract "took <ms>ms"`: `<name>` holes, `<_>` a hole that keeps nothing."""

    pattern: str


@dataclass(frozen=True)
class Where:
    """A filter pipe (`| status:>=500`, `| filter ...`): its names may be extracted fields."""

    node: Node


Pipe = Stats | Top | Sort | Limit | Fields | Logfmt | Json | Extract | Where

#: the functions of `| stats`
AGGREGATES = ("count", "count_distinct", "min", "max", "avg", "sum", "quantile")
#: the most pipes in one query
MAX_PIPES = 16
#: the largest `limit`/`top` count
MAX_LIMIT = 1_000_000


@dataclass(frozen=True)
class Query:
    """A filter (None: everything) and the pipes its records go through."""

    filter: Node | None
    pipes: tuple[Pipe, ...] = ()


def parse_query(text: str) -> Node | None:
    """The tree of an expression without pipes (None: an empty one, which matches everything)."""
    return _Parser(text).parse()


def parse(text: str) -> Query:
    """An expression and its pipes (`host:web1 | stats count() by (app)`)."""
    return _Parser(text).parse_all()


_HOLE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")


def extract_regex(pattern: str) -> re.Pattern[str]:
    """The regex of an `extract` pattern: literal text, and a lazy group per `<name>` hole
    (a hole at the end takes the rest of MSG)."""
    return _extract_regex(pattern, 1)


def _extract_regex(pattern: str, at: int) -> re.Pattern[str]:
    parts: list[str] = []
    last = 0
    seen: set[str] = set()
    holes = list(_HOLE.finditer(pattern))
    if not holes:
        raise QueryError("an extract pattern needs a <name> hole", at)
    for i, m in enumerate(holes):
        parts.append(re.escape(pattern[last : m.start()]))
        name = m.group(1)
        end = i == len(holes) - 1 and m.end() == len(pattern)
        body = ".*" if end else ".*?"
        if name == "_":
            parts.append(f"(?:{body})")
        else:
            if name in seen:
                raise QueryError(f"the hole <{name}> appears twice", at + m.start())
            seen.add(name)
            parts.append(f"(?P<{name}>{body})")
        last = m.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts), re.DOTALL)


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_LENGTH:
            raise QueryError(f"the expression is longer than {MAX_LENGTH} characters", 1)
        nul = text.find("\0")
        if nul >= 0:
            raise QueryError("a NUL character is not allowed", nul + 1)
        self.text = text
        self.pos = 0
        self.depth = 0
        #: in a filter pipe: any name is a field (one a pipe before extracted)
        self.in_pipe = False

    # -- scanning --------------------------------------------------------------------------------

    def error(self, message: str, pos: int | None = None) -> QueryError:
        return QueryError(message, (self.pos if pos is None else pos) + 1)

    def skip_space(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def bare(self) -> str:
        """A run of characters up to space, a parenthesis, a quote or a pipe."""
        start = self.pos
        text = self.text
        while self.pos < len(text) and text[self.pos] not in _STOP:
            self.pos += 1
        return text[start : self.pos]

    def quoted(self) -> str:
        """A "string" at `pos`: `\\"` and `\\\\` are escapes."""
        start = self.pos
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c == "\\" and self.pos + 1 < len(text):
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            if c == '"':
                self.pos += 1
                return "".join(out)
            out.append(c)
            self.pos += 1
        raise self.error(f'expected a closing " for the string opened at column {start + 1}')

    def keyword(self, word: str) -> bool:
        """Whether the next word is `word` (and consume it)."""
        self.skip_space()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (
            end == len(self.text) or self.text[end] in _STOP
        ):
            self.pos = end
            return True
        return False

    # -- grammar ---------------------------------------------------------------------------------

    def parse(self) -> Node | None:
        node = self.filter_part()
        if self.peek():
            raise self.error("expected AND, OR or the end (pipes are not taken here)")
        return node

    def filter_part(self) -> Node | None:
        c = self.peek()
        if not c or c == "|":
            return None
        node = self.or_expr()
        c = self.peek()
        if c and c != "|":
            what = "')' without its '('" if c == ")" else "AND, OR, '|' or the end"
            raise self.error(f"expected {what}")
        return node

    def parse_all(self) -> Query:
        node = self.filter_part()
        pipes: list[Pipe] = []
        while self.peek() == "|":
            self.pos += 1
            if len(pipes) >= MAX_PIPES:
                raise self.error(f"more than {MAX_PIPES} pipes")
            pipes.append(self.pipe())
        if self.peek():
            raise self.error("expected '|' or the end")
        return Query(node, tuple(pipes))

    # -- pipes -----------------------------------------------------------------------------------

    def pipe(self) -> Pipe:
        self.skip_space()
        at = self.pos
        for name in ("stats", "top", "sort", "limit", "fields", "logfmt", "json", "extract"):
            if self.keyword(name):
                pipe: Pipe = getattr(self, "pipe_" + name)(at)
                c = self.peek()
                if c and c != "|":
                    raise self.error(f"expected '|' or the end after the {name} pipe")
                return pipe
        self.keyword("filter")
        self.in_pipe = True
        if not self.peek() or self.peek() == "|":
            raise self.error(
                "expected a pipe: stats, top, sort, limit, fields, logfmt, json,"
                " extract, or a filter"
            )
        node = self.or_expr()
        c = self.peek()
        if c and c != "|":
            raise self.error("expected AND, OR, '|' or the end")
        return Where(node)

    def name(self) -> str:
        self.skip_space()
        at = self.pos
        name = self.bare().rstrip(",")
        self.pos = at + len(name)
        if not _FIELD_NAME.match(name):
            raise self.error("expected a field name", at)
        return name

    def names(self) -> tuple[str, ...]:
        """`(a, b)`, or `a, b` without the parentheses."""
        paren = self.peek() == "("
        if paren:
            self.pos += 1
        out = [self.name()]
        while self.peek() == ",":
            self.pos += 1
            out.append(self.name())
        if paren:
            if self.peek() != ")":
                raise self.error("expected ',' or ')'")
            self.pos += 1
        return tuple(out)

    def number(self, what: str) -> int:
        self.skip_space()
        at = self.pos
        word = self.bare()
        if not word.isdigit() or int(word) > MAX_LIMIT:
            raise self.error(f"expected {what}: a whole number up to {MAX_LIMIT}", at)
        return int(word)

    def by(self) -> tuple[str, ...]:
        return self.names() if self.keyword("by") else ()

    def pipe_stats(self, at: int) -> Stats:
        by = self.by()
        aggs = [self.aggregate()]
        while self.peek() == ",":
            self.pos += 1
            aggs.append(self.aggregate())
        by = by or self.by()
        return Stats(tuple(aggs), by)

    def aggregate(self) -> Aggregate:
        self.skip_space()
        at = self.pos
        word = self.bare()
        if word not in AGGREGATES or self.peek() != "(":
            raise self.error("expected " + ", ".join(f"{a}()" for a in AGGREGATES), at)
        self.pos += 1
        q = ""
        if word == "quantile":
            self.skip_space()
            q_at = self.pos
            q = self.bare().rstrip(",")
            self.pos = q_at + len(q)
            try:
                ok = 0 <= float(q) <= 1
            except ValueError:
                ok = False
            if not ok:
                raise self.error("expected a quantile between 0 and 1", q_at)
            if self.peek() != ",":
                raise self.error("expected ',' and a field")
            self.pos += 1
        field_name = ""
        if self.peek() != ")":
            field_name = self.name()
        if self.peek() != ")":
            raise self.error("expected ')'")
        self.pos += 1
        if (word == "count") != (not field_name):
            raise self.error("count() takes nothing; the others take a field", at)
        alias = ""
        if self.keyword("as"):
            alias = self.name()
        return Aggregate(word, field_name, q, alias)

    def pipe_top(self, at: int) -> Top:
        n = 10
        self.skip_space()
        if self.pos < len(self.text) and self.text[self.pos].isdigit():
            n = self.number("how many")
        if not self.keyword("by"):
            raise self.error("expected by (fields)")
        return Top(n, self.names())

    def pipe_sort(self, at: int) -> Sort:
        if not self.keyword("by"):
            raise self.error("expected by (fields)")
        names = self.names()
        desc = self.keyword("desc")
        if not desc:
            self.keyword("asc")
        return Sort(names, desc)

    def pipe_limit(self, at: int) -> Limit:
        return Limit(self.number("how many rows"))

    def pipe_fields(self, at: int) -> Fields:
        return Fields(self.names())

    def pipe_logfmt(self, at: int) -> Logfmt:
        return Logfmt()

    def pipe_json(self, at: int) -> Json:
        return Json()

    def pipe_extract(self, at: int) -> Extract:
        self.skip_space()
        p_at = self.pos
        if not self.text.startswith('"', self.pos):
            raise self.error('expected a "pattern" with <name> holes')
        pattern = self.quoted()
        _extract_regex(pattern, p_at + 1)
        return Extract(pattern)

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH} levels")

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.keyword("OR"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.unary()]
        while True:
            c = self.peek()
            if not c or c in ")|" or self.keyword_ahead("OR"):
                break
            self.keyword("AND")
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def keyword_ahead(self, word: str) -> bool:
        pos = self.pos
        found = self.keyword(word)
        self.pos = pos
        return found

    def unary(self) -> Node:
        c = self.peek()
        if not c or c in ")|":
            raise self.error("expected a word, a field filter or '('")
        if self.keyword("NOT"):
            self.nest()
            item = self.unary()
            self.depth -= 1
            return Not(item)
        if c == "-" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] not in _STOP:
            self.pos += 1
            self.nest()
            item = self.unary()
            self.depth -= 1
            return Not(item)
        return self.primary()

    def primary(self) -> Node:
        c = self.peek()
        start = self.pos
        if c == "(":
            self.pos += 1
            self.nest()
            node = self.or_expr()
            if self.peek() != ")":
                raise self.error("expected ')' to close the '(' at column " + str(start + 1))
            self.pos += 1
            self.depth -= 1
            return node
        if c == '"':
            return Text(self.quoted(), phrase=True)
        if c in "AO" and (self.keyword_ahead("AND") or self.keyword_ahead("OR")):
            raise self.error("expected a word, a field filter or '(' before " + c)
        word = self.bare()
        if word == "exists" and self.text.startswith("(", self.pos):
            return self.exists(start)
        colon = word.find(":")
        if colon > 0 and _FIELD_NAME.match(word[:colon]):
            self.pos = start + colon + 1
            return self.field(word[:colon], start)
        if word.endswith("*") and len(word) > 1:
            return Text(word[:-1], prefix=True)
        return Text(word)

    def exists(self, start: int) -> Node:
        self.pos += 1
        self.skip_space()
        at = self.pos
        name = self.bare()
        if not _FIELD_NAME.match(name):
            raise self.error("expected a field name or an SD-ID", at)
        if self.peek() != ")":
            raise self.error("expected ')' to close exists(")
        self.pos += 1
        return Exists(name)

    def field(self, name: str, start: int) -> Field:
        if not self.in_pipe:
            _check_name(name, start)
        at = self.pos
        text = self.text
        if name == "_time":
            return self.time_value(at)
        c = text[at] if at < len(text) else ""
        if c == '"':
            return Field(name, "=", self.quoted())
        if c == "~":
            self.pos += 1
            rx_at = self.pos
            quoted = text.startswith('"', self.pos)
            pattern = self.quoted() if quoted else self.bare()
            _check_regex(pattern, rx_at + quoted)
            return Field(name, "regex", pattern)
        for op in _COMPARE:
            if text.startswith(op, at):
                self.pos += len(op)
                value = self.value_word()
                return Field(name, op, value)
        quoted = text.startswith('"', at)
        value = self.value_word(at)
        if value == "*" and not quoted:
            return Field(name, "exists")
        if value.endswith("*") and not quoted:
            return Field(name, "prefix", value[:-1])
        if ".." in value and not quoted:
            low, _, high = value.partition("..")
            if not low or not high:
                raise self.error("expected a range LOW..HIGH", at)
            return Field(name, "range", low, high)
        return Field(name, "=", value)

    def value_word(self, at: int | None = None) -> str:
        at = self.pos if at is None else at
        if self.text.startswith('"', self.pos):
            return self.quoted()
        value = self.bare()
        if not value:
            raise self.error("expected a value after ':'", at)
        return value

    def time_value(self, at: int) -> Field:
        text = self.text
        if text.startswith("[", at):
            close = -1
            for i in range(at + 1, len(text)):
                if text[i] in ")]":
                    close = i
                    break
            if close < 0:
                raise self.error("expected ')' or ']' to close the time range", at)
            start, comma, end = text[at + 1 : close].partition(",")
            if not comma or not start.strip() or not end.strip():
                raise self.error("expected [START, END) with two times", at)
            self.pos = close + 1
            return Field("_time", "span", start.strip(), end.strip(), closed=text[close] == "]")
        for op in _COMPARE:
            if text.startswith(op, at):
                self.pos += len(op)
                return Field("_time", op, self.value_word())
        value = self.value_word(at)
        if not _DURATION.match(value):
            raise self.error(
                "expected a duration (30s, 10m, 1h, 2d, 1w), [START, END) or >=TIME", at
            )
        return Field("_time", "time", value)


def _check_name(name: str, at: int) -> None:
    if name in FIELDS or "." in name.strip(".") or "@" in name:
        return
    known = ", ".join(sorted(FIELDS))
    raise QueryError(f"unknown field {name!r} (one of {known}, or SD-ID.param)", at + 1)


def _check_regex(pattern: str, at: int) -> None:
    if len(pattern) > MAX_REGEX:
        raise QueryError(f"a regex is at most {MAX_REGEX} characters", at + 1)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise QueryError(f"not a valid regex: {exc.msg}", at + 1 + (exc.pos or 0)) from None


# -- back to text --------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def query_text(query: Query) -> str:
    """A query's text, which parses back to `query`."""
    parts = [to_text(query.filter)] if query.filter is not None else [""]
    parts.extend(_pipe_text(p) for p in query.pipes)
    return " | ".join(parts).strip()


def _pipe_text(pipe: Pipe) -> str:
    if isinstance(pipe, Stats):
        aggs = ", ".join(_aggregate_text(a) for a in pipe.aggregates)
        return f"stats {aggs}" + (f" by ({', '.join(pipe.by)})" if pipe.by else "")
    if isinstance(pipe, Top):
        return f"top {pipe.n} by ({', '.join(pipe.by)})"
    if isinstance(pipe, Sort):
        return f"sort by ({', '.join(pipe.by)})" + (" desc" if pipe.desc else "")
    if isinstance(pipe, Limit):
        return f"limit {pipe.n}"
    if isinstance(pipe, Fields):
        return "fields " + ", ".join(pipe.names)
    if isinstance(pipe, Logfmt):
        return "logfmt"
    if isinstance(pipe, Json):
        return "json"
    if isinstance(pipe, Extract):
        return "extract " + _quote(pipe.pattern)
    return "filter " + to_text(pipe.node)


def _aggregate_text(a: Aggregate) -> str:
    inner = f"{a.q}, {a.field}" if a.func == "quantile" else a.field
    return f"{a.func}({inner})" + (f" as {a.alias}" if a.alias else "")


def to_text(node: Node | None) -> str:
    """An expression that parses back to `node`."""
    if node is None:
        return ""
    if isinstance(node, Text):
        if node.phrase:
            return _quote(node.text)
        return node.text + "*" if node.prefix else node.text
    if isinstance(node, Exists):
        return f"exists({node.name})"
    if isinstance(node, Not):
        return f"NOT ({to_text(node.item)})"
    if isinstance(node, And):
        return " AND ".join(f"({to_text(i)})" for i in node.items)
    if isinstance(node, Or):
        return " OR ".join(f"({to_text(i)})" for i in node.items)
    return _field_text(node)


def _field_text(f: Field) -> str:
    head = f.name + ":"
    if f.op == "=":
        return head + _quote(f.value)
    if f.op == "prefix":
        return head + f.value + "*"
    if f.op == "regex":
        return head + "~" + _quote(f.value)
    if f.op == "exists":
        return head + "*"
    if f.op == "range":
        return f"{head}{f.value}..{f.high}"
    if f.op == "time":
        return head + f.value
    if f.op == "span":
        return f"{head}[{f.value}, {f.high}{']' if f.closed else ')'}"
    return head + f.op + _quote(f.value)
