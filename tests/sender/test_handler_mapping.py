"""Record -> message mapping: severity, facility, fields, structured data, timestamps, sizes.

No network: `encode()` gives the bytes that would go on the wire, and the constructor never
connects.
"""

from __future__ import annotations

import logging
import logging.config
import os
import socket
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syslogkit.codec.framing import frame
from syslogkit.codec.message import Facility, SDElement, Severity
from syslogkit.codec.rfc3164 import format_3164
from syslogkit.codec.rfc5424 import format_5424, format_timestamp
from syslogkit.sender.handler import SyslogHandler, program_name, severity_for_level, to_datetime

UDP = "udp://127.0.0.1:9"


def record(
    msg: str = "hello",
    level: int = logging.WARNING,
    created: float | None = None,
    exc_info: Any = None,
    **extra: Any,
) -> logging.LogRecord:
    rec = logging.LogRecord("app.module", level, __file__, 1, msg, None, exc_info)
    if created is not None:
        rec.created = created
    rec.__dict__.update(extra)
    return rec


def reference(handler: SyslogHandler, rec: logging.LogRecord, sequence: int | None = None) -> bytes:
    """What the codec alone makes of the record (the handler's fast path must agree)."""
    message = handler.to_message(rec, sequence=sequence)
    return format_5424(message, max_size=handler.max_size, bom=handler.bom)


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (logging.CRITICAL, Severity.CRIT),
        (logging.ERROR, Severity.ERR),
        (logging.WARNING, Severity.WARNING),
        (logging.INFO, Severity.INFO),
        (logging.DEBUG, Severity.DEBUG),
        (60, Severity.CRIT),
        (50, Severity.CRIT),
        (45, Severity.ERR),
        (35, Severity.WARNING),
        (29, Severity.NOTICE),
        (25, Severity.NOTICE),
        (24, Severity.INFO),
        (15, Severity.DEBUG),
        (5, Severity.DEBUG),
        (0, Severity.DEBUG),
    ],
)
def test_severity_for_level(level: int, severity: Severity) -> None:
    assert severity_for_level(level) is severity
    handler = SyslogHandler(UDP, facility="local0")
    assert handler.encode(record(level=level)).startswith(b"<%d>1 " % (16 * 8 + severity))


def test_header_fields_default() -> None:
    handler = SyslogHandler(UDP)
    message = handler.to_message(record())
    assert message.facility is Facility.USER and message.severity is Severity.WARNING
    assert message.hostname == socket.gethostname()
    assert message.app_name == program_name()
    assert message.procid == str(os.getpid())
    assert message.msgid is None and message.structured_data == ()
    assert message.version == 1


def test_header_fields_given() -> None:
    handler = SyslogHandler(
        UDP, facility=Facility.LOCAL7, app_name="billing", hostname="web-1", procid=42, msgid="TX"
    )
    out = handler.encode(record("paid"))
    assert out.startswith(b"<188>1 ")
    assert out.endswith(b" web-1 billing 42 TX - paid")


def test_header_fields_set_after_construction_reach_the_wire() -> None:
    """As with the stdlib handler (`handler.facility = ...`): the next record carries them,
    on the fast path and the general one alike."""
    handler = SyslogHandler(UDP, app_name="old", hostname="h1")
    handler.facility = "local3"
    handler.app_name = "billing"
    handler.hostname = "web-2"
    handler.msgid = "TX"
    fast = handler.encode(record("paid"))
    assert fast.startswith(b"<156>1 ") and b" web-2 billing " in fast and b" TX - paid" in fast
    handler.structured_data = {"env@32473": {"dc": "fra1"}}
    out = handler.encode(record("paid"))
    assert out.endswith(b' TX [env@32473 dc="fra1"] paid')
    slow = handler.encode(record("paid", severity="err"))
    assert slow.startswith(b"<155>1 ") and slow.endswith(b' TX [env@32473 dc="fra1"] paid')
    with pytest.raises(ValueError):
        handler.facility = 128  # a pre-shifted value is refused, never masked


def test_program_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/worker.py", "-v"])
    assert program_name() == "worker"
    monkeypatch.setattr(sys, "argv", ["/srv/app/mypkg/__main__.py"])
    assert program_name() == "mypkg"
    monkeypatch.setattr(sys, "argv", ["-c"])
    assert program_name() == os.path.basename(sys.executable)
    monkeypatch.setattr(sys, "argv", [])
    assert program_name()


def test_extra_overrides() -> None:
    handler = SyslogHandler(UDP, facility="local0", msgid="BASE")
    out = handler.encode(
        record("x", facility="auth", severity="notice", msgid="LOGIN", structured_data=None)
    )
    assert out.startswith(b"<%d>1 " % (4 * 8 + 5))
    assert b" LOGIN - x" in out
    assert handler.to_message(record(severity=1)).severity is Severity.ALERT
    assert handler.to_message(record(facility=Facility.MAIL)).facility is Facility.MAIL


def test_bad_override_falls_back_and_is_reported() -> None:
    handler = SyslogHandler(UDP, facility="local0", error_interval=0)
    seen: list[BaseException | None] = []
    handler.handleError = lambda rec: seen.append(sys.exc_info()[1])  # type: ignore[method-assign]
    message = handler.to_message(record(facility=128, severity="loud"))
    assert message.facility is Facility.LOCAL0 and message.severity is Severity.WARNING
    assert len(seen) == 2 and "pre-shifted" in str(seen[0])
    assert handler.stats["errors"] == 2


def test_structured_data_static_and_per_record() -> None:
    handler = SyslogHandler(
        UDP, structured_data={"origin@32473": {"ip": "10.0.0.1"}, "app@32473": {"v": "1"}}
    )
    message = handler.to_message(
        record(structured_data={"app@32473": {"v": "2", "k": "x"}, "req@32473": {"id": "7"}})
    )
    assert message.structured_data == (
        SDElement("origin@32473", (("ip", "10.0.0.1"),)),
        SDElement("app@32473", (("v", "2"), ("k", "x"))),
        SDElement("req@32473", (("id", "7"),)),
    )
    out = handler.encode(record('q"]\\'))
    assert b'[origin@32473 ip="10.0.0.1"][app@32473 v="1"] q"]\\' in out


def test_sequence_id_numbering() -> None:
    handler = SyslogHandler(UDP, sequence_id=True, structured_data={"a@1": {"b": "c"}})
    first = handler.encode(record("one"))
    second = handler.encode(record("two", structured_data={"r@1": {"x": "y"}}))
    assert b'[a@1 b="c"][meta sequenceId="1"] one' in first
    assert b'[a@1 b="c"][r@1 x="y"][meta sequenceId="2"] two' in second
    handler.encoder.numbers = iter([2147483647, 2147483648])
    assert b'sequenceId="2147483647"' in handler.encode(record())
    assert b'sequenceId="1"' in handler.encode(record())


def test_sequence_id_merges_into_static_meta() -> None:
    handler = SyslogHandler(UDP, sequence_id=True, structured_data={"meta": {"language": "en"}})
    assert b'[meta language="en" sequenceId="1"] hello' in handler.encode(record())


def test_formatter_output_with_traceback_is_msg() -> None:
    handler = SyslogHandler(UDP)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record("failed", level=logging.ERROR, exc_info=sys.exc_info())
    message = handler.to_message(rec)
    assert message.msg is not None
    assert message.msg.startswith("app.module: failed\nTraceback (most recent call last):")
    assert message.msg.endswith("RuntimeError: boom")


def test_timestamp_is_local_with_microseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/St_Johns")  # -03:30 in summer, -02:30... a real offset
    time.tzset()
    try:
        created = 1_719_835_200.123456  # 2024-07-01T12:00:00Z
        stamp = to_datetime(created)
        assert stamp.utcoffset() == timedelta(hours=-2, minutes=-30)
        assert stamp.microsecond == 123456
        assert stamp.timestamp() == pytest.approx(created, abs=1e-6)
        out = SyslogHandler(UDP).encode(record(created=created))
        assert b" 2024-07-01T09:30:00.123456-02:30 " in out
        winter = to_datetime(1_704_110_400.5)  # 2024-01-01T12:00:00Z
        assert winter.utcoffset() == timedelta(hours=-3, minutes=-30)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_bom_auto_and_forced() -> None:
    auto = SyslogHandler(UDP)
    assert auto.encode(record("plain")).endswith(b" plain")
    assert auto.encode(record("é")).endswith(b" \xef\xbb\xbf\xc3\xa9")
    assert SyslogHandler(UDP, bom=True).encode(record("plain")).endswith(b" \xef\xbb\xbfplain")
    assert SyslogHandler(UDP, bom="false").encode(record("é")).endswith(b" \xc3\xa9")
    with pytest.raises(ValueError):
        SyslogHandler(UDP, bom="sometimes")


def test_max_size_defaults() -> None:
    assert SyslogHandler("udp://h").max_size == 2048
    assert SyslogHandler("udp://h", rfc="3164").max_size == 1024
    assert SyslogHandler("tcp://h").max_size == 8192
    assert SyslogHandler("unix:///dev/null").max_size == 8192
    assert SyslogHandler("udp://h", max_size=None).max_size is None
    assert SyslogHandler("udp://h", max_size="none").max_size is None
    assert SyslogHandler("udp://h", max_size="4096").max_size == 4096
    with pytest.raises(ValueError):
        SyslogHandler("udp://h", max_size=10)


def test_truncation_is_counted_and_keeps_utf8() -> None:
    handler = SyslogHandler(UDP, max_size=200)
    rec = record("é" * 500)
    out = handler.encode(rec)
    assert len(out) <= 200
    out.decode("utf-8")
    assert handler.stats["truncated"] == 1
    assert out == reference(handler, rec)


def test_sd_dropped_is_counted() -> None:
    handler = SyslogHandler(UDP, max_size=120, structured_data={"big@1": {"v": "x" * 300}})
    out = handler.encode(record("msg"))
    assert len(out) <= 120 and b"big@1" not in out
    assert handler.stats["sd_dropped"] >= 1


def test_rfc_choice_by_transport() -> None:
    assert SyslogHandler("udp://h").rfc == "5424"
    local = SyslogHandler("unix:///dev/log")
    assert (local.rfc, local.omit_hostname) == ("3164", True)
    assert SyslogHandler("unix:///dev/log", rfc="5424").rfc == "5424"
    network_3164 = SyslogHandler("tcp://h", rfc="rfc3164")
    assert (network_3164.rfc, network_3164.omit_hostname) == ("3164", False)
    assert SyslogHandler("udp://h", rfc="local").omit_hostname
    with pytest.raises(ValueError):
        SyslogHandler("udp://h", rfc="5425")


def test_local_format_is_the_codecs() -> None:
    handler = SyslogHandler("unix:///dev/log", app_name="cron", hostname="box")
    rec = record("job done", level=logging.INFO)
    out = handler.encode(rec)
    assert out == format_3164(handler.to_message(rec), omit_hostname=True, max_size=8192)
    assert b"box" not in out and b"cron[%d]: job done" % os.getpid() in out


def test_stream_frames_use_the_framing() -> None:
    rec = record("line")
    octet = SyslogHandler("tcp://h")
    payload = reference(octet, rec)
    assert octet.encode(rec) == frame(payload, "octet")
    lf = SyslogHandler("tcp://h", framing="lf")
    assert lf.encode(rec) == frame(payload, "lf")
    with pytest.raises(ValueError):
        SyslogHandler("tcp://h", framing="smoke-signals")


def test_a_refused_option_leaves_no_half_built_handler_for_logging_shutdown() -> None:
    """logging.shutdown() flushes every handler logging knows; a constructor that raised must
    not have registered one (it failed in dictConfig's shutdown with no delivery)."""
    known = {id(ref()) for ref in logging._handlerList}
    with pytest.raises(ValueError):
        SyslogHandler("udp://a:514", delivery="background", queue_size=0)
    added = [ref() for ref in logging._handlerList if id(ref()) not in known]
    assert not [h for h in added if isinstance(h, SyslogHandler)]


def test_constructor_refuses_bad_settings() -> None:
    # RELP reads acknowledgements in the writer thread: sync delivery is refused...
    with pytest.raises(ValueError, match="background"):
        SyslogHandler("relp://h", delivery="sync")
    # ...and the default delivery (background on the network) is accepted
    relp = SyslogHandler("relp://h", relp_window=8)
    assert relp.delivery.transport.window == 8  # type: ignore[attr-defined]
    relp.close(timeout=0)
    with pytest.raises(ValueError, match="scheme"):
        SyslogHandler("tcp://a:514", failover=["tls://b:6514"])
    with pytest.raises(ValueError, match="stream"):
        SyslogHandler("udp://a:514", failover=["udp://b:514"])
    with pytest.raises(ValueError):
        SyslogHandler(UDP, facility=128)
    with pytest.raises(ValueError):
        SyslogHandler(UDP, timeout=0)
    with pytest.raises(ValueError):
        SyslogHandler(UDP, delivery="carrier-pigeon")


@pytest.mark.parametrize(
    ("address", "default"),
    [
        ("udp://h:514", "BackgroundDelivery"),
        ("tcp://h:514", "BackgroundDelivery"),
        ("tls://h:6514", "BackgroundDelivery"),
        ("unix:///dev/log", "SyncDelivery"),
        ("unix+stream:///dev/log", "SyncDelivery"),
    ],
)
def test_default_delivery_is_background_on_the_network_and_sync_on_unix_sockets(
    address: str, default: str
) -> None:
    """DESIGN.md: the caller only formats and enqueues on the network; either mode on request."""
    handlers = [
        SyslogHandler(address),
        SyslogHandler(address, delivery="sync"),
        SyslogHandler(address, delivery="background"),
    ]
    try:
        kinds = [type(handler.delivery).__name__ for handler in handlers]
        assert kinds == [default, "SyncDelivery", "BackgroundDelivery"]
    finally:
        for handler in handlers:
            handler.close(timeout=0)


def test_dict_config_with_plain_values() -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "syslog": {
                    "class": "syslogkit.sender.handler.SyslogHandler",
                    "address": "tcp://127.0.0.1:9",
                    "facility": "local3",
                    "app_name": "svc",
                    "structured_data": {"origin@32473": {"software": "svc"}},
                    "sequence_id": True,
                    "framing": "lf",
                    "timeout": 1.5,
                    "level": "INFO",
                }
            },
            "loggers": {"dictconfig.test": {"handlers": ["syslog"], "propagate": False}},
        }
    )
    handler = logging.getLogger("dictconfig.test").handlers[0]
    try:
        assert isinstance(handler, SyslogHandler)
        assert handler.facility is Facility.LOCAL3 and handler.level == logging.INFO
        assert handler.timeout == 1.5 and handler.framing == "lf"
        assert handler.stats["sent"] == 0  # nothing connected yet
    finally:
        logging.getLogger("dictconfig.test").handlers.clear()
        handler.close(timeout=0)


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=300
) | st.sampled_from(["plain", "line\nbreak", " ", "tab\there", "ü" * 700, "\x00nul"])


@settings(max_examples=300, deadline=None)
@given(
    text=_text,
    level=st.integers(min_value=0, max_value=60),
    created=st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False),
    bom=st.sampled_from(["auto", True, False]),
    sd=st.booleans(),
    sequence=st.booleans(),
)
def test_fast_path_equals_codec(
    text: str, level: int, created: float, bom: Any, sd: bool, sequence: bool
) -> None:
    """Whatever shortcut the handler takes, its bytes are the codec's bytes."""
    handler = SyslogHandler(
        UDP,
        bom=bom,
        sequence_id=sequence,
        msgid="ID",
        structured_data={"x@1": {"k": 'v"]'}} if sd else None,
    )
    rec = record(text, level=level, created=created)
    out = handler.encode(rec)
    assert out == reference(handler, rec, sequence=1 if sequence else None)


def test_timestamp_cache_matches_codec_across_seconds() -> None:
    handler = SyslogHandler(UDP)
    base = 1_700_000_000.0
    for created in (base, base + 0.9999996, base + 0.9999994, base + 1.25, base - 86400.5):
        out = handler.encode(record(created=created))
        assert format_timestamp(to_datetime(created)).encode() in out
        assert to_datetime(created) == datetime.fromtimestamp(created).astimezone()
