"""`syslogkit collect --config FILE` and `--check FILE`: the TOML file as flags and sinks.

Decisions:

- One table, `FLAG_KEYS`, says which key of the file stands for each flag of `collect`; the
  operations guide shows it (`docs/operations.md`) and a test holds the guide, this table and the
  argparse definition equal, so none of them can drift.
- Flags given beside `--config` override the file: a flag's key takes the flag's value; a
  repeatable flag (`--listen`, `--forward`) replaces the file's list. A sink flag sets its key on
  every sink of its kind in the file, or adds a sink named after the kind when there is none;
  `--no-db` removes the store sinks.
- Without `[sinks]` in the file (and without a file), the sinks are today's: a store unless
  `--no-db` (or a `--nats` edge without `--db`), plus what the flags ask for.
- `check()` reports every fault it can find without binding a socket (types, unknown keys,
  URLs, zones, sizes, files readable, certificates that parse and match their keys, routes that
  name existing sinks), each as `file:line: key: message`.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syslogkit.cli.forms import parse_duration, parse_size
from syslogkit.cli.main import CliError
from syslogkit.collector.configfile import ConfigError, ConfigFile, KeyPath, Secret

__all__ = [
    "FLAG_KEYS",
    "SINK_KINDS",
    "Settings",
    "SinkSpec",
    "apply_flags",
    "check",
    "check_main",
    "explicit_flags",
    "settings_from_file",
    "with_config",
]

DEFAULT_DB = "syslog.db"


@dataclass(frozen=True)
class FlagKey:
    """A flag of `collect` and the key of the config file that stands for it."""

    flag: str
    key: str
    note: str = ""


#: flag -> key (the one table; docs/operations.md shows it, a test holds them equal)
FLAG_KEYS: tuple[FlagKey, ...] = (
    FlagKey("--listen", "listeners[].url", "one `[[listeners]]` per URL; the flags replace them"),
    FlagKey("--db", "sinks.NAME.path", 'kind = "store"'),
    FlagKey("--no-db", "sinks", 'no sink with kind = "store"'),
    FlagKey("--sync", "sinks.NAME.sync", 'kind = "store"'),
    FlagKey("--no-writer-process", "sinks.NAME.writer_process", 'kind = "store"; false'),
    FlagKey("--min-free", "sinks.NAME.min_free", 'kind = "store"'),
    FlagKey("--jsonl", "sinks.NAME.path", 'kind = "jsonl"'),
    FlagKey("--stdout", "sinks.NAME", 'kind = "stdout"'),
    FlagKey("--stdout-json", "sinks.NAME.json", 'kind = "stdout"; true'),
    FlagKey("--forward", "sinks.NAME.url", 'kind = "forward"; one sink per URL'),
    FlagKey("--forward-ca-file", "sinks.NAME.ca_file", 'kind = "forward"'),
    FlagKey("--forward-cert-file", "sinks.NAME.cert_file", 'kind = "forward"'),
    FlagKey("--forward-key-file", "sinks.NAME.key_file", 'kind = "forward"'),
    FlagKey("--forward-spool", "sinks.NAME.spool", 'kind = "forward"'),
    FlagKey("--nats", "sinks.NAME.servers", 'kind = "nats"'),
    FlagKey("--retention-age", "retention.age", "every store sink"),
    FlagKey("--retention-size", "retention.size", "every store sink"),
    FlagKey("--commit-interval", "pipeline.commit_interval"),
    FlagKey("--high-water", "pipeline.high_water"),
    FlagKey("--stop-timeout", "pipeline.stop_timeout"),
    FlagKey("--tls-cert", "tls.cert"),
    FlagKey("--tls-key", "tls.key"),
    FlagKey("--tls-ca", "tls.ca"),
    FlagKey("--tls-capath", "tls.capath"),
    FlagKey("--client-cert", "tls.client_cert"),
    FlagKey("--timezone", "timezone"),
    FlagKey("--max-frame", "limits.max_frame"),
    FlagKey("--max-connections", "limits.max_connections"),
    FlagKey("--max-connections-per-peer", "limits.max_connections_per_peer"),
    FlagKey("--frame-timeout", "limits.frame_timeout"),
    FlagKey("--idle-timeout", "limits.idle_timeout"),
    FlagKey("--handshake-timeout", "limits.handshake_timeout"),
    FlagKey("--udp-rcvbuf", "limits.udp_rcvbuf"),
    FlagKey("--relp-window", "limits.relp_window"),
    FlagKey("--stats-file", "stats.file"),
    FlagKey("--stats-interval", "stats.interval"),
    FlagKey("--quiet", "quiet"),
    FlagKey("--no-uvloop", "uvloop", "false"),
    FlagKey("--user", "user", "started as root: run as this user once bound"),
    FlagKey("--group", "group"),
    FlagKey("--pid-file", "pid_file", "for `collect --reload PIDFILE`"),
    FlagKey("--nats-stream", "nats.stream"),
    FlagKey("--nats-subject-prefix", "nats.subject_prefix"),
    FlagKey("--nats-durable", "nats.durable"),
    FlagKey("--nats-ack-wait", "nats.ack_wait"),
    FlagKey("--nats-spool", "nats.spool"),
    FlagKey("--nats-memory", "nats.memory"),
    FlagKey("--nats-spool-size", "nats.spool_size"),
    FlagKey("--nats-creds", "nats.creds"),
    FlagKey("--nats-nkey", "nats.nkey"),
    FlagKey("--nats-ca", "nats.ca"),
    FlagKey("--nats-cert", "nats.cert"),
    FlagKey("--nats-key", "nats.key"),
    FlagKey("--web", "web.listen"),
    FlagKey("--web-token-file", "web.token_file"),
    FlagKey("--web-tls-cert", "web.tls_cert"),
    FlagKey("--web-tls-key", "web.tls_key"),
    FlagKey("--metrics", "metrics.listen"),
)

#: flags of `collect` that are not settings (they say what to do with the file)
NOT_SETTINGS = ("--help", "--config", "--check", "--reload")

# -- value kinds ---------------------------------------------------------------------------------

Convert = Callable[[Any], Any]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def _positive(value: Any) -> int:
    number = _int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError("must be a number of seconds >= 0")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _size(value: Any) -> str:
    text = str(_int(value)) if not isinstance(value, str) else value
    try:
        parse_size(text)
    except CliError as exc:
        raise ValueError(str(exc)) from None
    return text


def _duration(value: Any) -> str:
    text = value if isinstance(value, str) else str(_seconds(value))
    try:
        parse_duration(text)
    except CliError as exc:
        raise ValueError(str(exc)) from None
    return text


def _one_of(*choices: str) -> Convert:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return str(value)

    return convert


def _zone(value: Any) -> str:
    from syslogkit.collector.config import zone_of

    zone_of(_text(value))
    return str(value)


def _secret(value: Any) -> Secret:
    return value if isinstance(value, Secret) else Secret(_text(value))


def _servers(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return _text(value)


#: key -> (argparse dest, how the value is read); `invert`: the flag is the key's negation
@dataclass(frozen=True)
class Setting:
    dest: str
    convert: Convert
    invert: bool = False


GLOBAL_SETTINGS: dict[str, Setting] = {
    "retention.age": Setting("retention_age", _duration),
    "retention.size": Setting("retention_size", _size),
    "pipeline.commit_interval": Setting("commit_interval", _seconds),
    "pipeline.high_water": Setting("high_water", _positive),
    "pipeline.stop_timeout": Setting("stop_timeout", _seconds),
    "tls.cert": Setting("tls_cert", _text),
    "tls.key": Setting("tls_key", _text),
    "tls.ca": Setting("tls_ca", _text),
    "tls.capath": Setting("tls_capath", _text),
    "tls.client_cert": Setting("client_cert", _one_of("none", "optional", "required")),
    "timezone": Setting("timezone", _zone),
    "limits.max_frame": Setting("max_frame", _positive),
    "limits.max_connections": Setting("max_connections", _positive),
    "limits.max_connections_per_peer": Setting("max_connections_per_peer", _positive),
    "limits.frame_timeout": Setting("frame_timeout", _seconds),
    "limits.idle_timeout": Setting("idle_timeout", _seconds),
    "limits.handshake_timeout": Setting("handshake_timeout", _seconds),
    "limits.udp_rcvbuf": Setting("udp_rcvbuf", _size),
    "limits.relp_window": Setting("relp_window", _positive),
    "stats.file": Setting("stats_file", _text),
    "stats.interval": Setting("stats_interval", _seconds),
    "quiet": Setting("quiet", _bool),
    "uvloop": Setting("no_uvloop", _bool, invert=True),
    "user": Setting("user", _text),
    "group": Setting("group", _text),
    "pid_file": Setting("pid_file", _text),
    "nats.stream": Setting("nats_stream", _text),
    "nats.subject_prefix": Setting("nats_subject_prefix", _text),
    "nats.durable": Setting("nats_durable", _text),
    "nats.ack_wait": Setting("nats_ack_wait", _duration),
    "nats.spool": Setting("nats_spool", _text),
    "nats.memory": Setting("nats_memory", _size),
    "nats.spool_size": Setting("nats_spool_size", _size),
    "nats.creds": Setting("nats_creds", _text),
    "nats.nkey": Setting("nats_nkey", _text),
    "nats.ca": Setting("nats_ca", _text),
    "nats.cert": Setting("nats_cert", _text),
    "nats.key": Setting("nats_key", _text),
    "web.listen": Setting("web", _text),
    "web.token_file": Setting("web_token_file", _text),
    "web.tls_cert": Setting("web_tls_cert", _text),
    "web.tls_key": Setting("web_tls_key", _text),
    "metrics.listen": Setting("metrics", _text),
    # keys without a flag: NATS credentials (user and password, or a token), from a file
    "nats.user": Setting("nats_user", _text),
    "nats.password": Setting("nats_password", _secret),
    "nats.token": Setting("nats_token", _secret),
}
#: keys that are not settings of their own: a secret's file (read into the key without
#: `_file` by `configfile`), and the web token, which `collect --web` reads itself
DERIVED_KEYS = ("web.token", "nats.password_file", "nats.token_file")

#: sink kind -> its keys (beside `kind`) and how each is read
SINK_KINDS: dict[str, dict[str, Convert]] = {
    "store": {
        "path": _text,
        "sync": _one_of("off", "normal", "full"),
        "writer_process": _bool,
        "min_free": _size,
    },
    "jsonl": {"path": _text},
    "stdout": {"json": _bool},
    "forward": {
        "url": _text,
        "ca_file": _text,
        "cert_file": _text,
        "key_file": _text,
        "spool": _text,
    },
    "nats": {"servers": _servers},
    "file": {"path": _text, "format": _one_of("raw", "human", "json"), "max_open": _positive},
}
REQUIRED = {"jsonl": ("path",), "forward": ("url",), "nats": ("servers",), "file": ("path",)}

#: a listener's own TLS files (over `[tls]`): key -> the `[tls]` key it overrides
LISTENER_TLS = {
    "tls_cert": "cert",
    "tls_key": "key",
    "tls_ca": "ca",
    "tls_capath": "capath",
    "client_cert": "client_cert",
}
LISTENER_KEYS: dict[str, Convert] = {
    "url": _text,
    "name": _text,
    "tz": _zone,
    "max_connections_per_peer": _positive,
    **dict.fromkeys(("tls_cert", "tls_key", "tls_ca", "tls_capath"), _text),
    "client_cert": _one_of("none", "optional", "required"),
}

#: top-level keys that are not in GLOBAL_SETTINGS' tables
TOP_LEVEL = ("listeners", "sinks", "routes")


@dataclass
class SinkSpec:
    """A named sink as the file (or the flags) describe it; built by `cli.collect`."""

    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    path: KeyPath = ()


@dataclass
class ListenerSpec:
    """A listener: its URL (with `?tz=` and `?max_connections_per_peer=` folded in), its name,
    its own TLS settings (`[tls]` keys over the collector's) and its place in the file."""

    url: str
    name: str
    tls: dict[str, str] = field(default_factory=dict)
    path: KeyPath = ()


@dataclass
class Settings:
    """What a config file sets: flag values by argparse dest, listeners, sinks, routes."""

    values: dict[str, Any] = field(default_factory=dict)
    listeners: list[ListenerSpec] | None = None
    sinks: list[SinkSpec] | None = None
    routes: list[dict[str, Any]] = field(default_factory=list)
    file: ConfigFile | None = None


# -- the file -> Settings ------------------------------------------------------------------------


def settings_from_file(config: ConfigFile) -> tuple[Settings, list[ConfigError]]:
    """The settings of a parsed file, and every fault found reading them."""
    errors: list[ConfigError] = []
    settings = Settings(file=config)
    data = config.data
    for key, value in data.items():
        if key in TOP_LEVEL:
            continue
        if isinstance(value, dict):
            for sub, item in value.items():
                _global(config, settings, (key, sub), item, errors)
        else:
            _global(config, settings, (key,), value, errors)
    if "listeners" in data:
        settings.listeners = _listeners(config, data["listeners"], errors)
    if "sinks" in data:
        settings.sinks = _sinks(config, data["sinks"], errors)
    if "routes" in data:
        routes = data["routes"]
        if not isinstance(routes, list) or not all(isinstance(r, dict) for r in routes):
            errors.append(config.error(("routes",), "must be an array of tables [[routes]]"))
        else:
            settings.routes = routes
    return settings, errors


def _global(
    config: ConfigFile, settings: Settings, path: KeyPath, value: Any, errors: list[ConfigError]
) -> None:
    name = ".".join(str(p) for p in path)
    if name in DERIVED_KEYS:
        return
    setting = GLOBAL_SETTINGS.get(name)
    if setting is None:
        errors.append(config.error(path, "unknown key"))
        return
    try:
        converted = setting.convert(value)
    except ValueError as exc:
        errors.append(config.error(path, str(exc)))
        return
    settings.values[setting.dest] = (not converted) if setting.invert else converted


def _listeners(config: ConfigFile, value: Any, errors: list[ConfigError]) -> list[ListenerSpec]:
    from syslogkit.collector.config import parse_listen_url

    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        errors.append(config.error(("listeners",), "must be an array of tables [[listeners]]"))
        return []
    found: list[ListenerSpec] = []
    names: set[str] = set()
    for index, item in enumerate(value):
        here: KeyPath = ("listeners", index)
        options = _options(config, here, item, LISTENER_KEYS, errors)
        url = options.get("url")
        if url is None:
            if "url" not in item:
                errors.append(config.error(here, "a listener needs a url"))
            continue
        query = [f"{k}={options[k]}" for k in ("tz", "max_connections_per_peer") if k in options]
        if query:
            url += ("&" if "?" in url else "?") + "&".join(query)
        if not url.startswith(("nats://", "nats+tls://")):
            try:
                parse_listen_url(url)
            except ValueError as exc:
                errors.append(config.error((*here, "url"), str(exc)))
                continue
        name = options.get("name") or f"{url.partition('://')[0]}-{index + 1}"
        if name in names:
            errors.append(config.error((*here, "name"), f"a second listener named {name!r}"))
        names.add(name)
        tls = {LISTENER_TLS[k]: v for k, v in options.items() if k in LISTENER_TLS}
        found.append(ListenerSpec(url, name, tls, here))
    return found


def _sinks(config: ConfigFile, value: Any, errors: list[ConfigError]) -> list[SinkSpec]:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        errors.append(config.error(("sinks",), "must be tables [sinks.NAME] with a kind"))
        return []
    specs: list[SinkSpec] = []
    for name, table in value.items():
        here: KeyPath = ("sinks", name)
        kind = table.get("kind")
        if kind not in SINK_KINDS:
            errors.append(
                config.error((*here, "kind"), f"must be one of {', '.join(SINK_KINDS)}")
                if kind is not None
                else config.error(here, f"a sink needs a kind ({', '.join(SINK_KINDS)})")
            )
            continue
        known = {"kind": _text, **SINK_KINDS[kind]}
        options = _options(config, here, table, known, errors)
        options.pop("kind")
        for required in REQUIRED.get(kind, ()):
            if required not in table:
                errors.append(config.error(here, f"a {kind} sink needs {required}"))
        specs.append(SinkSpec(name, kind, options, here))
    return specs


def _options(
    config: ConfigFile,
    path: KeyPath,
    table: dict[str, Any],
    known: dict[str, Convert],
    errors: list[ConfigError],
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in table.items():
        convert = known.get(key)
        if convert is None:
            errors.append(config.error((*path, key), "unknown key"))
            continue
        try:
            options[key] = convert(value)
        except ValueError as exc:
            errors.append(config.error((*path, key), str(exc)))
    return options


# -- flags over the file -------------------------------------------------------------------------

_UNSET: Any = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()


def explicit_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """The dests of the flags given in `argv` (not their defaults), with their values."""
    namespace = argparse.Namespace()
    for action in parser._actions:
        if action.dest != "help":
            appends = isinstance(action, argparse._AppendAction)
            setattr(namespace, action.dest, None if appends else _UNSET)
    parser.parse_args(list(argv), namespace)
    return {k: v for k, v in vars(namespace).items() if v is not _UNSET and v is not None}


def apply_flags(
    parser: argparse.ArgumentParser, settings: Settings, given: dict[str, Any]
) -> argparse.Namespace:
    """The namespace `collect` runs with: flag defaults < the file < flags given."""
    values: dict[str, Any] = {}
    for action in parser._actions:
        if action.dest != "help":
            values[action.dest] = action.default
    values.update(settings.values)
    values.update(given)
    if settings.listeners is not None and "listen" not in given:
        values["listen"] = [spec.url for spec in settings.listeners]
    args = argparse.Namespace(**values)
    args.sink_specs = sink_specs(settings.sinks, given, args)
    names = {spec.url: spec.name for spec in settings.listeners or ()}
    args.listener_names = [
        names.get(url, _default_name(url, i)) for i, url in enumerate(args.listen or ())
    ]
    args.listener_tls = {spec.url: spec.tls for spec in settings.listeners or () if spec.tls}
    args.routes = settings.routes
    return args


def _default_name(url: str, index: int) -> str:
    return f"{url.partition('://')[0]}-{index + 1}"


def sink_specs(
    file_sinks: list[SinkSpec] | None, given: dict[str, Any], args: argparse.Namespace
) -> list[SinkSpec]:
    """The sinks: the file's (or today's defaults) with the given flags over them."""
    if file_sinks is not None:
        specs = [SinkSpec(s.name, s.kind, dict(s.options), s.path) for s in file_sinks]
    elif args.no_db or (args.nats and not args.db):  # an edge stores nothing
        specs = []
    else:
        specs = [SinkSpec("store", "store")]
    if given.get("no_db"):
        specs = [s for s in specs if s.kind != "store"]
    _set(specs, "store", "path", given.get("db"))
    _set(specs, "store", "sync", given.get("sync"), add=False)
    _set(specs, "store", "min_free", given.get("min_free"), add=False)
    if given.get("no_writer_process"):
        _set(specs, "store", "writer_process", False, add=False)
    _set(specs, "jsonl", "path", given.get("jsonl"))
    if given.get("stdout") or given.get("stdout_json"):
        _set(specs, "stdout", "json", bool(given.get("stdout_json")))
    if given.get("forward"):
        specs = [s for s in specs if s.kind != "forward"]
        for i, url in enumerate(given["forward"]):
            specs.append(
                SinkSpec("forward" if i == 0 else f"forward-{i + 1}", "forward", {"url": url})
            )
    for option in ("ca_file", "cert_file", "key_file"):
        _set(specs, "forward", option, given.get(f"forward_{option}"), add=False)
    _set(specs, "forward", "spool", given.get("forward_spool"), add=False)
    _set(specs, "nats", "servers", given.get("nats"))
    return specs


def _set(specs: list[SinkSpec], kind: str, option: str, value: Any, *, add: bool = True) -> None:
    if value is None:
        return
    of_kind = [s for s in specs if s.kind == kind]
    if not of_kind and add:
        name = kind if all(s.name != kind for s in specs) else f"{kind}-flag"
        of_kind = [SinkSpec(name, kind)]
        specs.append(of_kind[0])
    for spec in of_kind:
        spec.options[option] = value


# -- check ---------------------------------------------------------------------------------------


def check(settings: Settings) -> list[ConfigError]:
    """The faults found without binding: files, certificates, routes (see the module docstring)."""
    config = settings.file
    if config is None:
        return []
    errors: list[ConfigError] = []
    data = config.data
    for key in ("tls.cert", "tls.key", "tls.ca", "web.tls_cert", "web.tls_key", "web.token_file"):
        _readable(config, key, errors)
    for key in ("nats.creds", "nats.nkey", "nats.ca", "nats.cert", "nats.key"):
        _readable(config, key, errors)
    tls = _table(data, "tls")
    if isinstance(tls.get("cert"), str):
        _pair(config, ("tls", "cert"), tls.get("cert"), tls.get("key"), errors)
        if isinstance(tls.get("ca"), str):
            _ca(config, ("tls", "ca"), tls["ca"], errors)
    for listener in settings.listeners or ():
        errors.extend(_check_listener_tls(config, listener, tls))
    web = _table(data, "web")
    if isinstance(web.get("tls_cert"), str):
        _pair(config, ("web", "tls_cert"), web["tls_cert"], web.get("tls_key"), errors)
    for spec in settings.sinks or ():
        errors.extend(_check_sink(config, spec))
    names = [spec.name for spec in settings.sinks or ()]
    listeners = [spec.name for spec in settings.listeners or ()]
    errors.extend(check_routes(config, settings.routes, names, listeners))
    return errors


def _check_listener_tls(
    config: ConfigFile, spec: ListenerSpec, tls: dict[str, Any]
) -> Iterable[ConfigError]:
    """A listener's own TLS files: readable, the certificate matches its key; a TLS listener
    has a certificate, its own or `[tls]`'s."""
    errors: list[ConfigError] = []
    own = {key: value for key, value in spec.tls.items() if key != "client_cert"}
    for key, value in own.items():
        if not _is_readable(value):
            errors.append(config.error((*spec.path, f"tls_{key}"), f"cannot read {value}"))
    if errors:
        return errors
    if "cert" in own:
        _pair(config, (*spec.path, "tls_cert"), own["cert"], own.get("key"), errors)
    if "ca" in own:
        _ca(config, (*spec.path, "tls_ca"), own["ca"], errors)
    is_tls = spec.url.startswith(("tls://", "relp+tls://"))
    if is_tls and "cert" not in own and not isinstance(tls.get("cert"), str):
        errors.append(
            config.error((*spec.path, "url"), "a TLS listener needs tls_cert here or tls.cert")
        )
    return errors


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    table = data.get(name)
    return table if isinstance(table, dict) else {}


def check_routes(
    config: ConfigFile, routes: list[dict[str, Any]], sinks: Sequence[str], listeners: Sequence[str]
) -> list[ConfigError]:
    """Each route compiles (its match) and names sinks that exist."""
    from syslogkit.collector.routes import RouteError, compile_routes

    try:
        compile_routes(routes, sinks, listeners)
    except RouteError as exc:
        return [config.error(("routes", *exc.path), exc.message)]
    return []


def _check_sink(config: ConfigFile, spec: SinkSpec) -> Iterable[ConfigError]:
    here = spec.path
    options = spec.options
    if spec.kind in ("store", "jsonl"):
        path = options.get("path", DEFAULT_DB)
        folder = Path(path).parent
        if not folder.is_dir():
            yield config.error((*here, "path"), f"no such folder: {folder}")
    if spec.kind == "file" and isinstance(options.get("path"), str):
        yield from _check_template(config, (*here, "path"), options["path"])
    if spec.kind == "forward":
        url = options.get("url")
        if isinstance(url, str) and "://" not in url:
            yield config.error((*here, "url"), f"{url!r} is not a URL like tcp://host:514")
        for key in ("ca_file", "cert_file", "key_file"):
            value = options.get(key)
            if value is not None and not _is_readable(value):
                yield config.error((*here, key), f"cannot read {value}")
        if options.get("cert_file") and _is_readable(options["cert_file"]):
            errors: list[ConfigError] = []
            _pair(
                config, (*here, "cert_file"), options["cert_file"], options.get("key_file"), errors
            )
            yield from errors
    if (
        spec.kind == "forward"
        and options.get("spool")
        and not Path(options["spool"]).parent.is_dir()
    ):
        yield config.error((*here, "spool"), f"no such folder: {Path(options['spool']).parent}")


def _check_template(config: ConfigFile, path: KeyPath, template: str) -> Iterable[ConfigError]:
    from syslogkit.collector.sinks.file import FileSink

    try:
        base = FileSink(template).base
    except ValueError as exc:
        yield config.error(path, str(exc))
        return
    if not Path(base).is_dir():
        yield config.error(path, f"no such folder: {base}")


def _is_readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def _readable(config: ConfigFile, key: str, errors: list[ConfigError]) -> None:
    section, _, name = key.partition(".")
    table = config.data.get(section)
    value = table.get(name) if isinstance(table, dict) else None
    if isinstance(value, str) and not _is_readable(value):
        errors.append(config.error((section, name), f"cannot read {value}"))


def _pair(
    config: ConfigFile, path: KeyPath, cert: Any, key: Any, errors: list[ConfigError]
) -> None:
    """The certificate parses, and matches its key (the key file, or a key in the same PEM)."""
    if not _is_readable(cert) or (isinstance(key, str) and not _is_readable(key)):
        return  # said already
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key if isinstance(key, str) else None)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(exc):
            reason = "the certificate does not match its key"
        errors.append(config.error(path, f"{cert}: {reason}"))
    except OSError as exc:
        errors.append(config.error(path, f"{cert}: {exc.strerror or exc}"))


def _ca(config: ConfigFile, path: KeyPath, ca: str, errors: list[ConfigError]) -> None:
    if not _is_readable(ca):
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=ca)
    except (ssl.SSLError, OSError) as exc:
        errors.append(config.error(path, f"{ca}: not a CA certificate file ({exc})"))


# -- the command's two entries -------------------------------------------------------------------


def read_settings(path: str) -> tuple[Settings, list[ConfigError]]:
    """Load, read and check a config file: its settings and every fault found."""
    from syslogkit.collector.configfile import load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        return Settings(), [exc]
    settings, errors = settings_from_file(config)
    return settings, errors + check(settings)


def check_main(path: str, out: Any, err: Any) -> int:
    """`collect --check FILE`: each fault on its own line (file:line: key: message); 0 or 1."""
    settings, errors = read_settings(path)
    for error in sorted(errors, key=lambda e: e.line):
        print(error, file=err)
    if errors:
        print(f"{path}: {len(errors)} error{'s' if len(errors) > 1 else ''}", file=err)
        return 1
    print(
        f"{path}: ok ({len(settings.listeners or ())} listeners, "
        f"{len(settings.sinks or ())} sinks, {len(settings.routes)} routes)",
        file=out,
    )
    return 0


def with_config(
    parser: argparse.ArgumentParser, argv: Sequence[str], path: str | None
) -> argparse.Namespace:
    """The namespace `collect` runs with: the file (when given) under the flags given."""
    settings = Settings()
    if path is not None:
        settings, errors = read_settings(path)
        if errors:
            for error in errors[:-1]:
                print(error, file=sys.stderr)
            raise CliError(str(errors[-1]))
    given = explicit_flags(parser, argv)
    args = apply_flags(parser, settings, given)
    args.parser, args.given = parser, given  # what a reload needs to read the file again
    return args
