"""Address parsing: URLs, stdlib forms, the local default."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from syslogkit.transports import address as address_module
from syslogkit.transports.address import Address, default_address, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("udp://127.0.0.1:5514", Address("udp", "127.0.0.1", 5514)),
        ("udp://logs.example", Address("udp", "logs.example", 514)),
        ("UDP://Logs.Example:1", Address("udp", "Logs.Example", 1)),
        ("tcp://logs.example:601", Address("tcp", "logs.example", 601)),
        ("tcp://logs.example", Address("tcp", "logs.example", 514)),
        ("tls://logs.example", Address("tls", "logs.example", 6514)),
        ("tls://[::1]:6514", Address("tls", "::1", 6514)),
        ("udp://[::1]", Address("udp", "::1", 514)),
        ("udp://[fe80::1%eth0]:514", Address("udp", "fe80::1%eth0", 514)),
        ("relp://collector", Address("relp", "collector", 2514)),
        ("relp+tls://collector:2515", Address("relp+tls", "collector", 2515)),
        ("tcp://host_name.local:65535/", Address("tcp", "host_name.local", 65535)),
        ("unix:///dev/log", Address("unix", path="/dev/log")),
        ("unix:/run/log.sock", Address("unix", path="/run/log.sock")),
        ("unix+stream:///run/x.sock", Address("unix+stream", path="/run/x.sock")),
        ("unix+dgram:///run/x.sock", Address("unix", path="/run/x.sock")),
    ],
)
def test_urls(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ftp://host",
        "udp://",
        "udp://host:0",
        "udp://host:65536",
        "udp://host:port",
        "udp://::1:514",
        "udp://[127.0.0.1]:514",
        "udp://[::1",
        "udp://[::1]x",
        "tcp://host/path",
        "tcp://user@host",
        "udp://bad host",
        "unix://dev/log",
        "unix://",
    ],
)
def test_bad_urls(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_stdlib_pair_and_socktype() -> None:
    assert parse_address(("127.0.0.1", 514)) == Address("udp", "127.0.0.1", 514)
    assert parse_address(["::1", "5514"]) == Address("udp", "::1", 5514)
    assert parse_address(("h", 514), socket.SOCK_STREAM) == Address("tcp", "h", 514)
    assert parse_address(("h", 514), socket.SOCK_DGRAM) == Address("udp", "h", 514)
    assert parse_address(("h", 514), "stream") == Address("tcp", "h", 514)
    assert parse_address(("[::1]", 514)) == Address("udp", "::1", 514)


def test_plain_strings() -> None:
    assert parse_address("/dev/log") == Address("unix", path="/dev/log")
    assert parse_address("/dev/log", socket.SOCK_STREAM) == Address("unix+stream", path="/dev/log")
    assert parse_address("./relative.sock") == Address("unix", path="./relative.sock")
    assert parse_address("logs.example:5514") == Address("udp", "logs.example", 5514)
    assert parse_address("[::1]:5514", "stream") == Address("tcp", "::1", 5514)
    assert parse_address("logs.example") == Address("udp", "logs.example", 514)


@pytest.mark.parametrize(
    ("value", "socktype"),
    [
        (("h",), None),
        (("h", 1, 2), None),
        ((1, 2), None),
        (("h", True), None),
        ("udp://h", socket.SOCK_STREAM),
        ("tcp://h", socket.SOCK_DGRAM),
        ("unix+stream:///x", "dgram"),
        (("h", 514), 99),
        (("h", 514), "raw"),
    ],
)
def test_bad_stdlib_forms(value: object, socktype: object) -> None:
    with pytest.raises(ValueError):
        parse_address(value, socktype)  # type: ignore[arg-type]


def test_socktype_may_agree_with_url() -> None:
    assert parse_address("tcp://h", socket.SOCK_STREAM).scheme == "tcp"
    assert parse_address("unix:///x", socket.SOCK_STREAM).scheme == "unix+stream"


def test_wrong_type() -> None:
    with pytest.raises(TypeError):
        parse_address(514)  # type: ignore[arg-type]


def test_default_is_dev_log_when_present(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sock = f"{tmp_path}/log"
    open(sock, "w").close()
    monkeypatch.setattr(address_module, "LOCAL_SOCKET", sock)
    assert parse_address(None) == Address("unix", path=sock)
    assert parse_address("") == Address("unix", path=sock)
    assert default_address(socket.SOCK_STREAM) == Address("unix+stream", path=sock)


def test_default_without_dev_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(address_module, "LOCAL_SOCKET", "/nonexistent/syslogkit/log")
    assert parse_address(None) == Address("udp", "localhost", 514)
    assert default_address("stream") == Address("tcp", "localhost", 514)


def test_properties_and_text() -> None:
    tls = parse_address("tls://[::1]:6514")
    assert tls.is_stream and not tls.is_unix
    assert str(tls) == "tls://[::1]:6514"
    unix = parse_address("unix:///dev/log")
    assert unix.is_unix and not unix.is_stream
    assert str(unix) == "unix:///dev/log"
    assert parse_address("unix+stream:///s").is_stream
    assert not parse_address("udp://h").is_stream
    assert parse_address(str(tls)) == tls
    assert parse_address(tls) is tls
