"""The collector's config file: TOML read once, `${ENV}` filled in, secrets kept out of sight,
and the line of every key, so that each error names file, line and key.

Decisions:

- TOML through the standard library's `tomllib` (Python 3.11+), `tomli` on 3.10 (the same
  parser, the `[cli]` extra installs it there).
- `${NAME}` inside any string value is replaced by the environment variable NAME; an unset
  variable is an error naming the key (never an empty string in its place); `$${` writes `${`.
- A key named `password_file` or `token_file` holds the path of a secret (relative paths, here
  as everywhere in the file, from the working directory, as on the command line): the file's
  first line becomes a `Secret` under the name without `_file` (`password`, `token`). A
  `Secret` prints as `***`; only `reveal()` gives the text, at the one place it is used.
- The position of a key is found by reading the text again (tomllib gives positions only for
  syntax errors): table headers (`[a.b]`, `[[a]]`, counted per array), then `key =` lines,
  dotted keys too. A key that cannot be placed (inside an inline table) gets its table's line.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "ConfigFile", "KeyPath", "Secret", "load_config"]

#: a key's place in the document: table names, and array indexes for `[[arrays]]`
KeyPath = tuple[str | int, ...]

SECRET_FILE_KEYS = ("password_file", "token_file")


class Secret:
    """A value that never prints: `str()` and `repr()` give `***`; `reveal()` gives the text."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def reveal(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)


@dataclass(frozen=True)
class ConfigError(Exception):
    """One fault of a config file: `file:line: key: message` (line 0: the file as a whole)."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def dotted(path: KeyPath) -> str:
    """`("sinks", "main", "path")` -> `sinks.main.path`; `("routes", 0, "sinks")` ->
    `routes[1].sinks` (arrays counted from 1, as a person reads the file)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass
class ConfigFile:
    """A parsed config file: `data` (interpolated, secrets read) and where each key is."""

    path: str
    data: dict[str, Any]
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int:
        """The line of `path`, or of its nearest enclosing table that has one (0: unknown)."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line:
                return line
        return 0

    def error(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(self.path, self.line_of(path), dotted(path), message)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_KEY_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")


def _parts(text: str) -> list[str]:
    return [p.strip("\"'") for p in _KEY_PART.findall(text)]


def key_lines(text: str) -> dict[KeyPath, int]:
    """Where each table and key starts (1-based lines); see the module docstring."""
    lines: dict[KeyPath, int] = {}
    counts: dict[tuple[str, ...], int] = {}
    table: KeyPath = ()
    in_multiline = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
            in_multiline = not in_multiline
            if not in_multiline:
                continue
        elif in_multiline:
            continue
        header = _HEADER.match(line)
        if header:
            names = _parts(header.group(2))
            table = _resolve(names, counts)
            if header.group(1) == "[[":
                index = counts.get(tuple(names), 0)
                counts[tuple(names)] = index + 1
                table = (*_resolve(names[:-1], counts), names[-1], index)
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = (*table, *_parts(assign.group(1)))
            for end in range(len(table) + 1, len(key) + 1):
                lines.setdefault(key[:end], number)
    return lines


def _resolve(names: list[str], counts: Mapping[tuple[str, ...], int]) -> KeyPath:
    """`[routes.match]` after `[[routes]]`: the match of the last route."""
    path: list[str | int] = []
    for i, name in enumerate(names):
        path.append(name)
        seen = counts.get(tuple(names[: i + 1]))
        if seen:
            path.append(seen - 1)
    return tuple(path)


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> ConfigFile:
    """Read, parse and interpolate `path`; the first fault raises `ConfigError` (syntax errors
    with tomllib's line and column)."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            name, 0, "", f"cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    tomllib = _toml(name)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, message = _syntax_line(str(exc))
        if not line and "end of document" in message:
            line = max(1, len(text.splitlines()))
        raise ConfigError(name, line, "", f"TOML: {message}") from None
    config = ConfigFile(name, {}, key_lines(text))
    env = os.environ if environ is None else environ
    config.data = _fill(config, (), raw, env, Path())
    return config


def _toml(name: str) -> Any:
    """`tomllib`, or `tomli` on Python 3.10 (the `[cli]` extra installs it there)."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:  # pragma: no cover - Python 3.10
        import tomli  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover
        raise ConfigError(
            name, 0, "", "reading TOML on Python 3.10 needs tomli: pip install 'syslogkit[cli]'"
        ) from None
    return tomli  # pragma: no cover


def _syntax_line(message: str) -> tuple[int, str]:
    found = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if found is None:
        return 0, message
    return int(found.group(1)), f"{message[: found.start()].strip()} (column {found.group(2)})"


_VARIABLE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _fill(config: ConfigFile, path: KeyPath, value: Any, env: Mapping[str, str], base: Path) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            here = (*path, key)
            filled = _fill(config, here, item, env, base)
            if key in SECRET_FILE_KEYS:
                out[key.removesuffix("_file")] = _read_secret(config, here, filled, base)
            out[key] = filled
        return out
    if isinstance(value, list):
        return [_fill(config, (*path, i), item, env, base) for i, item in enumerate(value)]
    if isinstance(value, str) and "$" in value:
        return _interpolate(config, path, value, env)
    return value


def _interpolate(config: ConfigFile, path: KeyPath, text: str, env: Mapping[str, str]) -> str:
    def replace(found: re.Match[str]) -> str:
        name = found.group(1)
        if name is None:
            return "${"
        if name not in env:
            raise config.error(path, f"environment variable {name} is not set")
        return env[name]

    return _VARIABLE.sub(replace, text)


def _read_secret(config: ConfigFile, path: KeyPath, value: Any, base: Path) -> Secret:
    if not isinstance(value, str):
        raise config.error(path, "must be the path of a file")
    file = base / value
    try:
        first = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise config.error(
            path, f"cannot read {value}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if not first or not first[0].strip():
        raise config.error(path, f"{value} is empty")
    return Secret(first[0].strip())


def walk(data: Mapping[str, Any], path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Every (path, value) of a parsed document, depth first."""
    for key, value in data.items():
        here = (*path, key)
        yield here, value
        if isinstance(value, dict):
            yield from walk(value, here)
