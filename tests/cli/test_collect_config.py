"""`syslogkit collect --config FILE` and `--check FILE` (docs/operations.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from syslogkit.cli.collect import _collect_parser
from syslogkit.cli.settings import (
    FLAG_KEYS,
    NOT_SETTINGS,
    apply_flags,
    explicit_flags,
    read_settings,
)
from syslogkit.collector.configfile import Secret, load_config

PY = sys.executable
DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def check(path: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "syslogkit", "collect", "--check", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        cwd=cwd,
    )


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# -- the one table -------------------------------------------------------------------------------


def _doc_table() -> list[tuple[str, str, str]]:
    text = DOC.read_text()
    body = text.split("<!-- flags: begin -->", 1)[1].split("<!-- flags: end -->", 1)[0]
    rows = []
    for line in body.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((cells[0].strip("`"), cells[1].strip("`"), cells[2]))
    return rows


def test_every_collect_flag_has_one_key_in_the_documented_table() -> None:
    parser = _collect_parser()
    flags = {
        max(action.option_strings, key=len) for action in parser._actions if action.option_strings
    } - set(NOT_SETTINGS)
    code = [(f.flag, f.key, f.note) for f in FLAG_KEYS]
    assert _doc_table() == code, "docs/operations.md's table differs from cli/settings.FLAG_KEYS"
    assert {f.flag for f in FLAG_KEYS} == flags, "a flag of collect without a key, or a stale row"
    assert len({f.flag for f in FLAG_KEYS}) == len(FLAG_KEYS)


def test_each_flag_key_is_read_from_the_file(tmp_path: Path) -> None:
    """Every key of the table that stands for a value (not a sink's) is accepted by the file
    and lands on its flag's dest."""
    from syslogkit.cli.settings import GLOBAL_SETTINGS

    parser = _collect_parser()
    dests = {max(a.option_strings, key=len): a.dest for a in parser._actions if a.option_strings}
    for row in FLAG_KEYS:
        if row.key in GLOBAL_SETTINGS:
            assert GLOBAL_SETTINGS[row.key].dest == dests[row.flag], row


# -- flags over the file ---------------------------------------------------------------------------


def test_flags_given_with_config_override_the_file(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        f"""
        quiet = false
        [[listeners]]
        url = "tcp://127.0.0.1:0"
        [limits]
        max_frame = 1000
        relp_window = 7
        [sinks.main]
        kind = "store"
        path = "{tmp_path / "file.db"}"
        sync = "full"
        """,
    )
    parser = _collect_parser()
    argv = ["--config", str(config), "--max-frame", "2000", "--db", str(tmp_path / "flag.db")]
    argv += ["-l", "udp://127.0.0.1:0", "--jsonl", str(tmp_path / "x.jsonl"), "-q"]
    settings, errors = read_settings(str(config))
    assert errors == []
    args = apply_flags(parser, settings, explicit_flags(parser, argv))
    assert args.max_frame == 2000  # the flag
    assert args.relp_window == 7  # the file
    assert args.frame_timeout == 10.0  # the default
    assert args.quiet is True
    assert args.listen == ["udp://127.0.0.1:0"]  # the flags replace the file's listeners
    specs = {s.name: (s.kind, s.options) for s in args.sink_specs}
    assert specs == {
        "main": ("store", {"path": str(tmp_path / "flag.db"), "sync": "full"}),
        "jsonl": ("jsonl", {"path": str(tmp_path / "x.jsonl")}),
    }
    args = apply_flags(parser, settings, explicit_flags(parser, ["--no-db", "--stdout-json"]))
    assert [(s.kind, s.options) for s in args.sink_specs] == [("stdout", {"json": True})]


def test_without_a_file_the_flags_make_todays_sinks() -> None:
    parser = _collect_parser()
    from syslogkit.cli.settings import Settings

    def kinds(*argv: str) -> list[tuple[str, str]]:
        args = apply_flags(parser, Settings(), explicit_flags(parser, argv))
        return [(s.name, s.kind) for s in args.sink_specs]

    assert kinds() == [("store", "store")]
    assert kinds("--no-db", "--stdout") == [("stdout", "stdout")]
    assert kinds("--nats", "nats://x") == [("nats", "nats")]  # an edge stores nothing
    assert kinds("--forward", "tcp://a:1", "--forward", "udp://b:2") == [
        ("store", "store"),
        ("forward", "forward"),
        ("forward-2", "forward"),
    ]


# -- the file ----------------------------------------------------------------------------------


def test_environment_variables_are_filled_in_and_an_unset_one_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, 'timezone = "${ZONE}"\n[stats]\nfile = "$${literal}"\n')
    loaded = load_config(config, {"ZONE": "Europe/Paris"})
    assert loaded.data == {"timezone": "Europe/Paris", "stats": {"file": "${literal}"}}
    config = write(tmp_path, '\n[stats]\nfile = "${NOT_SET_HERE}/s.json"\n')
    result = check(config)
    assert result.returncode == 1
    assert f"{config}:3: stats.file: environment variable NOT_SET_HERE is not set" in result.stderr


def test_a_secret_from_a_file_is_never_printed(tmp_path: Path) -> None:
    secret = "s3cret-Value-123"
    (tmp_path / "pw").write_text(secret + "\n")
    config = write(
        tmp_path,
        f"""
        [nats]
        user = "edge"
        password_file = "{tmp_path / "pw"}"
        stream = 5
        """,
    )
    loaded = load_config(config)
    assert loaded.data["nats"]["password"] == Secret(secret)
    assert secret not in repr(loaded.data) and secret not in str(loaded.data["nats"]["password"])
    settings, errors = read_settings(str(config))
    assert [str(e) for e in errors] == [f"{config}:5: nats.stream: must be a string"]
    assert settings.values["nats_password"].reveal() == secret
    assert secret not in repr(settings)
    result = check(config)
    assert result.returncode == 1 and secret not in result.stdout + result.stderr
    from syslogkit.cli.nats import _options

    args = apply_flags(_collect_parser(), settings, {})
    pytest.importorskip("nats")
    options = _options("nats://127.0.0.1:4222", args, "nats_")
    assert (options.user, options.password) == ("edge", secret)
    assert secret not in repr(options)


def test_check_names_file_line_and_key_of_each_fault(tmp_path: Path, pki: Any) -> None:
    config = write(
        tmp_path,
        f"""
        timezone = "Mars/Olympus"

        [[listeners]]
        url = "tls://127.0.0.1:6514"
        [[listeners]]
        url = "carrier-pigeon://x"

        [tls]
        cert = "{pki.server.cert}"
        key = "{pki.client.key}"
        ca = "{tmp_path / "missing-ca.pem"}"

        [limits]
        max_frame = "big"
        colour = "blue"

        [sinks.main]
        kind = "store"
        path = "{tmp_path / "no-such-dir" / "s.db"}"
        [sinks.odd]
        kind = "carrier"

        [[routes]]
        match = {{ facility = "kern", msg = "(unclosed" }}
        sinks = ["main"]
        """,
    )
    result = check(config)
    assert result.returncode == 1, result.stdout
    c = str(config)
    expected = [
        f"{c}:2: timezone: unknown time zone 'Mars/Olympus'",
        f"{c}:7: listeners[2].url: listen address 'carrier-pigeon://x': scheme must be",
        f"{c}:10: tls.cert: {pki.server.cert}: the certificate does not match its key",
        f"{c}:12: tls.ca: cannot read {tmp_path / 'missing-ca.pem'}",
        f"{c}:15: limits.max_frame: must be an integer",
        f"{c}:16: limits.colour: unknown key",
        f"{c}:20: sinks.main.path: no such folder: {tmp_path / 'no-such-dir'}",
        f"{c}:22: sinks.odd.kind: must be one of store, jsonl, stdout, forward, nats, file",
        f"{c}:25: routes[1].match.msg: bad regular expression",
    ]
    lines = result.stderr.splitlines()
    for want in expected:
        assert any(line.startswith(want) for line in lines), (want, lines)
    assert lines[-1] == f"{c}: {len(expected)} errors"


def test_check_gives_the_line_and_column_of_a_syntax_error(tmp_path: Path) -> None:
    config = write(tmp_path, "[limits]\nmax_frame = 10\nmax_frame = 20\n[sinks\n")
    result = check(config)
    assert result.returncode == 1
    assert re.match(rf"{re.escape(str(config))}:3: TOML: .*\(column \d+\)", result.stderr)


def test_check_routes_name_sinks_and_listeners_that_exist(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
        [[listeners]]
        name = "edge"
        url = "udp://127.0.0.1:0"
        [sinks.out]
        kind = "stdout"
        [[routes]]
        match = { listener = "edge" }
        sinks = ["out"]
        [[routes]]
        match = { listener = "core", severity = "loud" }
        sinks = ["out"]
        [[routes]]
        sinks = ["elsewhere"]
        """,
    )
    result = check(config)
    assert result.returncode == 1
    assert f"{config}:11: routes[2].match.listener: no listener named 'core'" in result.stderr


def test_check_passes_the_documented_example(tmp_path: Path, pki: Any) -> None:
    """docs/operations.md's complete example, its paths moved under a temporary folder."""
    text = DOC.read_text()
    block = text.split("<!-- example: collector.toml -->\n```toml\n", 1)[1].split("```", 1)[0]
    for folder in ("etc", "var/lib", "var/log"):
        (tmp_path / folder / "syslogkit").mkdir(parents=True)
    (tmp_path / "etc/syslogkit/server.pem").write_bytes(pki.server.cert.read_bytes())
    (tmp_path / "etc/syslogkit/server-key.pem").write_bytes(pki.server.key.read_bytes())
    (tmp_path / "etc/syslogkit/ca.pem").write_bytes(pki.ca.cert.read_bytes())
    block = re.sub(r'"/(etc|var/lib|var/log)/', lambda m: f'"{tmp_path}/{m.group(1)}/', block)
    config = write(tmp_path, block)
    result = check(config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{config}: ok (2 listeners, 3 sinks, 4 routes)"


def test_collect_refuses_to_start_on_a_bad_config(tmp_path: Path) -> None:
    config = write(tmp_path, "[limits]\nmax_frame = -1\n")
    result = subprocess.run(
        [PY, "-m", "syslogkit", "collect", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    assert f"{config}:2: limits.max_frame: must be at least 1" in result.stderr


def test_collect_runs_from_a_config_file(tmp_path: Path) -> None:
    from cli.test_collector_cli import Collect, send_tcp

    config = write(
        tmp_path,
        f"""
        [[listeners]]
        url = "tcp://127.0.0.1:0"
        [sinks.lines]
        kind = "jsonl"
        path = "{tmp_path / "all.jsonl"}"
        [stats]
        file = "stats.json"
        """,
    )
    c = Collect(tmp_path, "--config", str(config))
    assert "appending JSON lines to" in "\n".join(c.out)
    send_tcp(c.port("tcp"), b"<13>1 - h app - - - from the file's listener")
    code, _, _ = c.terminate()
    assert code == 0
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["from the file's listener"]
    assert not (tmp_path / "syslog.db").exists()  # [sinks] is the whole list
    assert json.loads((tmp_path / "stats.json").read_text())["pipeline"]["committed"] == 1


def test_collect_routes_by_listener_and_facility_and_tells_what_no_route_took(
    tmp_path: Path,
) -> None:
    from cli.test_collector_cli import Collect, send_tcp, send_udp

    config = write(
        tmp_path,
        f"""
        [[listeners]]
        name = "stream"
        url = "tcp://127.0.0.1:0"
        [[listeners]]
        name = "datagrams"
        url = "udp://127.0.0.1:0"
        [sinks.auth]
        kind = "jsonl"
        path = "{tmp_path / "auth.jsonl"}"
        [sinks.tcp]
        kind = "jsonl"
        path = "{tmp_path / "tcp.jsonl"}"
        [[routes]]
        match = {{ facility = ["auth", "authpriv"] }}
        sinks = ["auth"]
        final = true
        [[routes]]
        match = {{ listener = "stream" }}
        sinks = ["tcp"]
        """,
    )
    c = Collect(tmp_path, "--config", str(config))
    assert "routing by 2 routes" in "\n".join(c.out)
    send_tcp(c.port("tcp"), b"<38>1 - h sshd - - - auth over tcp", b"<14>1 - h a - - - user tcp")
    send_udp(c.port("udp"), b"<86>1 - h su - - - authpriv over udp", b"<14>1 - h a - - - lost")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(_msgs(tmp_path / "auth.jsonl")) < 2:
        time.sleep(0.05)
    code, _, err = c.terminate()
    assert code == 0
    assert sorted(_msgs(tmp_path / "auth.jsonl")) == ["auth over tcp", "authpriv over udp"]
    assert _msgs(tmp_path / "tcp.jsonl") == ["user tcp"]
    assert "routes: dropped=0 unrouted=1 rate_limited=0 (not given to any sink)" in err


def _msgs(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["msg"] for line in path.read_text().splitlines()]


def test_check_passes_the_readme_config(tmp_path: Path) -> None:
    readme = (DOC.parents[1] / "README.md").read_text()
    block = readme.split("Beside the flags, a TOML file", 1)[1].split("```toml\n", 1)[1]
    config = write(tmp_path, block.split("```", 1)[0])
    result = check(config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok (1 listeners, 2 sinks, 2 routes)")


def test_collect_writes_files_per_host_inside_the_base_whatever_the_hostname(
    tmp_path: Path,
) -> None:
    from cli.test_collector_cli import Collect, send_udp

    (tmp_path / "remote").mkdir()
    config = write(
        tmp_path,
        f"""
        [[listeners]]
        url = "udp://127.0.0.1:0"
        [sinks.hosts]
        kind = "file"
        path = "{tmp_path}/remote/{{host}}/{{app}}.log"
        format = "raw"
        """,
    )
    assert check(config).returncode == 0
    c = Collect(tmp_path, "--config", str(config))
    hostile = b"<13>1 - ../../etc passwd - - - climb"
    send_udp(c.port("udp"), b"<13>1 - web-1 nginx - - - plain", hostile)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(list((tmp_path / "remote").rglob("*.log"))) < 2:
        time.sleep(0.05)
    code, _, _ = c.terminate()
    assert code == 0
    found = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.log"))
    assert found == ["remote/_._.._etc/passwd.log", "remote/web-1/nginx.log"]
    assert (tmp_path / "remote/_._.._etc/passwd.log").read_bytes() == hostile + b"\n"


def test_each_tls_listener_may_have_its_own_certificate(tmp_path: Path, pki: Any) -> None:
    import socket
    import ssl

    from cli.test_collector_cli import Collect

    config = write(
        tmp_path,
        f"""
        [[listeners]]
        url = "tls://127.0.0.1:0"
        tls_cert = "{pki.server.cert}"
        tls_key = "{pki.server.key}"
        [[listeners]]
        url = "relp+tls://127.0.0.1:0"
        tls_cert = "{pki.other_server.cert}"
        tls_key = "{pki.other_server.key}"
        [sinks.a]
        kind = "jsonl"
        path = "a.jsonl"
        """,
    )
    assert check(config).returncode == 0
    c = Collect(tmp_path, "--config", str(config))
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_verify_locations(cafile=str(pki.other_ca.cert))
    seen = []
    for scheme, cert in (("tls", pki.server.cert), ("relp+tls", pki.other_server.cert)):
        with (
            socket.create_connection(("127.0.0.1", c.port(scheme + "://")), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            seen.append(tls.getpeercert(binary_form=True))
        assert seen[-1] == ssl.PEM_cert_to_DER_cert(cert.read_text())
    code, _, _ = c.terminate()
    assert code == 0


def test_check_a_listeners_own_tls_files(tmp_path: Path, pki: Any) -> None:
    config = write(
        tmp_path,
        f"""
        [[listeners]]
        url = "tls://127.0.0.1:0"
        tls_cert = "{pki.server.cert}"
        tls_key = "{pki.client.key}"
        [[listeners]]
        url = "tls://127.0.0.1:0"
        """,
    )
    result = check(config)
    assert result.returncode == 1
    assert (
        f"{config}:4: listeners[1].tls_cert: {pki.server.cert}: the certificate does not match"
        " its key" in result.stderr
    )
    assert f"{config}:7: listeners[2].url: a TLS listener needs tls_cert here or tls.cert" in (
        result.stderr
    )
