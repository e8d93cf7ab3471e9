"""loguru through SyslogSink into a SyslogHandler, checked at a real collector."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

loguru = pytest.importorskip("loguru")

from support.collector import Capture  # noqa: E402
from support.docs import (  # noqa: E402
    INTEGRATIONS,
    doc_examples,
    run_shop_integration_example,
)
from syslogkit import SDElement, Severity, SyslogHandler  # noqa: E402
from syslogkit.collector import CollectorThread, Record  # noqa: E402
from syslogkit.integrations.loguru import SyslogSink  # noqa: E402

SD_ID = "loguru@32473"


@pytest.fixture
def logger() -> Iterator[Any]:
    """loguru's logger with no sinks; the test's sinks are removed afterwards."""
    log = loguru.logger
    log.remove()
    yield log
    log.remove()


def add(logger: Any, sink: SyslogSink, **options: Any) -> None:
    logger.add(sink, level=options.pop("level", "TRACE"), catch=False, **options)


def arrived(capture: tuple[CollectorThread, Capture], sink: SyslogSink, count: int) -> list[Record]:
    sink.handler.flush()
    records = capture[1].wait(count)
    for record in records:
        assert record.error is None, (record.error, record.raw)
    return records


def test_extra_becomes_structured_data_and_the_message_is_msg(
    capture: tuple[CollectorThread, Capture], logger: Any
) -> None:
    collector, _ = capture
    sink = SyslogSink(SyslogHandler(collector.url("tcp"), app_name="lg-test"))
    add(logger, sink)
    try:
        log = logger.bind(request_id="r-1")
        log.info("order {order_id} placed", order_id=42)
        with logger.contextualize(tenant="acme"):
            log.bind(price=3.5, note=None).warning("stock low")
        logger.info("no extra")
        records = arrived(capture, sink, 3)
    finally:
        sink.close(5.0)
    first, second, third = (r.message for r in records)
    assert first is not None and second is not None and third is not None
    assert (first.msg, first.severity, first.app_name) == (
        "order 42 placed",
        Severity.INFO,
        "lg-test",
    )
    assert first.structured_data == (SDElement(SD_ID, (("request_id", "r-1"), ("order_id", "42"))),)
    assert second.severity == Severity.WARNING
    assert second.sd_dict() == {
        SD_ID: {"tenant": "acme", "request_id": "r-1", "price": "3.5", "note": "None"}
    }
    assert (third.msg, third.structured_data) == ("no extra", ())


def test_levels_map_to_severities(capture: tuple[CollectorThread, Capture], logger: Any) -> None:
    collector, _ = capture
    sink = SyslogSink(SyslogHandler(collector.url("udp"), app_name="lg-levels"))
    add(logger, sink)
    try:
        logger.level("AUDIT")
    except ValueError:  # levels are global to loguru: made once per process
        logger.level("AUDIT", no=45)
    try:
        expected = {
            "TRACE": Severity.DEBUG,
            "DEBUG": Severity.DEBUG,
            "INFO": Severity.INFO,
            "SUCCESS": Severity.NOTICE,
            "WARNING": Severity.WARNING,
            "ERROR": Severity.ERR,
            "AUDIT": Severity.ERR,
            "CRITICAL": Severity.CRIT,
        }
        for level in expected:
            logger.log(level, level)
        records = arrived(capture, sink, len(expected))
    finally:
        sink.close(5.0)
    got = {r.message.msg: r.message.severity for r in records if r.message}
    assert got == expected


def test_exceptions_are_appended_to_msg(
    capture: tuple[CollectorThread, Capture], logger: Any
) -> None:
    collector, _ = capture
    sink = SyslogSink(SyslogHandler(collector.url("tcp"), app_name="lg-exc"))
    add(logger, sink)
    try:
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            logger.bind(order_id=7).exception("payment failed")
        logger.opt(exception=True).info("no exception here")
        records = arrived(capture, sink, 2)
    finally:
        sink.close(5.0)
    failed, plain = (r.message for r in records)
    assert failed is not None and failed.msg is not None and failed.severity == Severity.ERR
    head, _, trace = failed.msg.partition("\n")
    assert head == "payment failed"
    assert trace.startswith("Traceback (most recent call last):")
    assert trace.rstrip().endswith("ZeroDivisionError: division by zero")
    assert failed.sd_dict() == {SD_ID: {"order_id": "7"}}
    assert plain is not None and plain.msg == "no exception here"


def test_keys_names_overrides_and_options(
    capture: tuple[CollectorThread, Capture], logger: Any
) -> None:
    collector, _ = capture
    handler = SyslogHandler(
        collector.url("tcp"), app_name="lg-opts", structured_data={"origin": {"ip": "10.0.0.1"}}
    )
    sink = SyslogSink(
        handler,
        sd_id="app@32473",
        exclude=("secret",),
        overrides=("msgid", "facility", "structured_data"),
    )
    add(logger, sink)
    try:
        logger.bind(
            msgid="LOGIN",
            facility="auth",
            secret="hunter2",
            structured_data={"auth@32473": {"method": "otp"}},
            **{"user id": "bob", "a=b]": 1, "k" * 40: 2, "name": "n", "msg": "m", "args": 3},
        ).info("login")
        logger.bind(structured_data="not sd", quoted='say "hi" \\ ]').info("odd")
        records = arrived(capture, sink, 2)
    finally:
        sink.close(5.0)
    first, second = (r.message for r in records)
    assert first is not None and second is not None
    assert (first.msgid, first.facility, first.msg) == ("LOGIN", 4, "login")
    assert first.structured_data == (
        SDElement("origin", (("ip", "10.0.0.1"),)),
        SDElement("auth@32473", (("method", "otp"),)),
        SDElement(
            "app@32473",
            (
                ("user_id", "bob"),
                ("a_b_", "1"),
                ("k" * 32, "2"),
                ("name", "n"),
                ("msg", "m"),
                ("args", "3"),
            ),
        ),
    )
    assert second.sd_dict()["app@32473"] == {
        "structured_data": "not sd",
        "quoted": 'say "hi" \\ ]',
    }
    with pytest.raises(ValueError):
        SyslogSink(handler, sd_id="bad id")
    with pytest.raises(ValueError):
        SyslogSink(handler, overrides=("hostname",))


def test_formatted_msg_and_handler_level_and_formatter(
    capture: tuple[CollectorThread, Capture], logger: Any
) -> None:
    collector, _ = capture
    handler = SyslogHandler(collector.url("tcp"), app_name="lg-fmt", level=logging.INFO)
    handler.setFormatter(logging.Formatter("%(name)s:%(funcName)s:%(levelname)s %(message)s"))
    sink = SyslogSink(handler)
    formatted = SyslogSink(SyslogHandler(collector.url("tcp"), app_name="lg-fmt2"), formatted=True)
    add(logger, sink)
    add(logger, formatted, format="{level.name}|{message}|{extra[k]}", level="WARNING")
    try:
        logger.debug("below the handler's level")
        logger.bind(k="v").success("shown")
        logger.bind(k="w").warning("both")
        arrived(capture, sink, 3)
    finally:
        sink.close(5.0)
        formatted.close(5.0)
    by_app: dict[str, list[str]] = {}
    for record in capture[1].records:
        assert record.message is not None and record.message.app_name and record.message.msg
        by_app.setdefault(record.message.app_name, []).append(record.message.msg)
    here = f"{__name__}:test_formatted_msg_and_handler_level_and_formatter"
    assert by_app == {
        "lg-fmt": [f"{here}:SUCCESS shown", f"{here}:WARNING both"],
        "lg-fmt2": ["WARNING|both|w"],
    }


def test_enqueue_true_delivers_from_loguru_thread(
    capture: tuple[CollectorThread, Capture], logger: Any
) -> None:
    collector, _ = capture
    sink = SyslogSink(SyslogHandler(collector.url("tcp"), app_name="lg-queue"))
    add(logger, sink, enqueue=True)
    try:
        for i in range(200):
            logger.bind(n=i).info("record {}", i)
        logger.complete()
        records = arrived(capture, sink, 200)
    finally:
        sink.close(5.0)
    assert [r.message.msg for r in records if r.message] == [f"record {i}" for i in range(200)]
    assert [r.message.sd_dict()[SD_ID]["n"] for r in records if r.message] == [
        str(i) for i in range(200)
    ]


def test_documented_example(capture: tuple[CollectorThread, Capture], tmp_path: Path) -> None:
    """docs/integrations.md's loguru example, run as a program, delivers what it shows."""
    example = doc_examples(INTEGRATIONS)["loguru"]
    failed = run_shop_integration_example(example, capture, tmp_path / "loguru")
    assert failed.message is not None
    assert failed.message.sd_dict() == {SD_ID: {"request": "r-9", "customer": "c-17"}}
