"""The query language (issue 21): `language` (text -> a tree of nodes, and back; sans-I/O),
`compile` (a tree -> parameterised SQL for the store's `Filters` and a bounded Python predicate
for the rest: `Plan`). Used by `syslogkit query`; docs/query.md is the user's side."""

from .compile import MAX_EXAMINED, Plan, compile_query
from .language import QueryError, parse_query, to_text

__all__ = ["MAX_EXAMINED", "Plan", "QueryError", "compile_query", "parse_query", "to_text"]
