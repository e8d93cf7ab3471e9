"""structlog through SyslogProcessor into a SyslogHandler, checked at a real collector."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

structlog = pytest.importorskip("structlog")

from support.collector import Capture  # noqa: E402
from support.docs import (  # noqa: E402
    INTEGRATIONS,
    doc_examples,
    run_shop_integration_example,
)
from syslogkit import SDElement, Severity, SyslogHandler  # noqa: E402
from syslogkit.collector import CollectorThread, Record  # noqa: E402
from syslogkit.integrations.structlog import (  # noqa: E402
    SyslogProcessor,
    structured_data_from_event_dict,
)

SD_ID = "structlog@32473"
#: Every attribute a LogRecord has, plus the two `logging` forbids in `extra`.
RECORD_ATTRIBUTES = sorted(
    {*logging.LogRecord("n", 20, "p", 1, "m", (), None).__dict__, "message", "asctime"}
)


@pytest.fixture
def handler(capture: tuple[CollectorThread, Capture]) -> Iterator[SyslogHandler]:
    collector, _ = capture
    h = SyslogHandler(collector.url("tcp"), app_name="sl-test")
    yield h
    h.close(5.0)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("test.structlog."):
            logging.getLogger(name).handlers.clear()


def stdlib_logger(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(f"test.structlog.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def bound(handler: logging.Handler, name: str, *processors: Any) -> Any:
    """A structlog.stdlib.BoundLogger over a stdlib logger (no global structlog state)."""
    return structlog.wrap_logger(
        stdlib_logger(handler, name),
        processors=[structlog.stdlib.filter_by_level, *processors],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def arrived(
    capture: tuple[CollectorThread, Capture], handler: SyslogHandler, count: int
) -> list[Record]:
    handler.flush(5.0)
    records = capture[1].wait(count)
    for record in records:
        assert record.error is None, (record.error, record.raw)
    return records


def sd_of(record: Record, sd_id: str = SD_ID) -> list[tuple[str, str]]:
    assert record.message is not None
    for element in record.message.structured_data:
        if element.id == sd_id:
            return list(element.params)
    raise AssertionError(f"no {sd_id} in {record.raw!r}")


def test_event_dict_becomes_one_sd_element_and_the_event_is_msg(
    capture: tuple[CollectorThread, Capture], handler: SyslogHandler
) -> None:
    log = bound(handler, "basic", SyslogProcessor()).bind(request_id="r-1")
    log.info("order placed", order_id=42, price=3.5, gift=True, note=None)
    log.warning("stock low", sku="A-7")
    log.debug("plain")
    first, second, third = arrived(capture, handler, 3)
    assert first.message is not None and first.message.msg == "order placed"
    assert first.message.severity == Severity.INFO
    assert first.message.app_name == "sl-test"
    assert sd_of(first) == [
        ("request_id", "r-1"),
        ("order_id", "42"),
        ("price", "3.5"),
        ("gift", "True"),
        ("note", "None"),
    ]
    assert second.message is not None and second.message.severity == Severity.WARNING
    assert sd_of(second) == [("request_id", "r-1"), ("sku", "A-7")]
    assert third.message is not None and third.message.severity == Severity.DEBUG
    assert third.message.structured_data == (SDElement(SD_ID, (("request_id", "r-1"),)),)


def test_keys_that_clash_with_logrecord_attributes_never_raise(
    capture: tuple[CollectorThread, Capture], handler: SyslogHandler
) -> None:
    clashing: dict[str, Any] = {key: f"v-{key}" for key in RECORD_ATTRIBUTES}
    # exc_info and stack_info are logging's arguments, used as such (tested below)
    clashing.update(exc_info=False, stack_info=False)
    # structlog's own renderer hands them to `logging` as `extra`, which refuses them:
    plain = structlog.wrap_logger(
        stdlib_logger(logging.NullHandler(), "plain"),
        processors=[structlog.stdlib.render_to_log_kwargs],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    with pytest.raises(KeyError):
        plain.info("clash", name="x")

    log = bound(handler, "clash", SyslogProcessor())
    log.info("clash", **clashing)
    log.bind(**clashing).error("bound clash")
    log.info("with stack", stack_info=True, stacklevel=1, name="n")
    records = arrived(capture, handler, 3)
    expected = [(k, v) for k, v in clashing.items() if k not in ("exc_info", "stack_info")]
    assert "name" in dict(expected) and "msg" in dict(expected) and "args" in dict(expected)
    for record, text in zip(records[:2], ("clash", "bound clash"), strict=True):
        assert record.message is not None
        assert record.message.msg == text
        assert sd_of(record) == expected
    stacked = records[2].message
    assert stacked is not None and stacked.msg is not None
    assert stacked.msg.startswith("with stack\nStack (most recent call last):")
    assert sd_of(records[2]) == [("name", "n")]


def test_exc_info_is_the_record_exception_and_rendered_tracebacks_join_msg(
    capture: tuple[CollectorThread, Capture], handler: SyslogHandler
) -> None:
    log = bound(handler, "exc", SyslogProcessor())
    rendered = bound(
        handler, "exc-rendered", structlog.processors.format_exc_info, SyslogProcessor()
    )
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        log.exception("payment failed", order_id=7)
        rendered.exception("payment failed again")
    log.info("no exception here", exc_info=True)  # true outside an exception: nothing appended
    log.info("weird exc_info", exc_info="yes")
    records = arrived(capture, handler, 4)
    for record, text in zip(records[:2], ("payment failed", "payment failed again"), strict=True):
        assert record.message is not None and record.message.msg is not None
        assert record.message.severity == Severity.ERR
        head, _, trace = record.message.msg.partition("\n")
        assert head == text
        assert trace.startswith("Traceback (most recent call last):")
        assert trace.rstrip().endswith("ZeroDivisionError: division by zero")
    assert sd_of(records[0]) == [("order_id", "7")]
    assert records[1].message is not None and records[1].message.structured_data == ()
    assert [r.message.msg for r in records[2:] if r.message] == [
        "no exception here",
        "weird exc_info",
    ]


def test_keys_become_sd_names_and_values_text(
    capture: tuple[CollectorThread, Capture], handler: SyslogHandler
) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    log = bound(handler, "names", SyslogProcessor())
    fields: dict[str, Any] = {
        "user id": "bob",
        "a=b": 1,
        'q"]': 2,
        "café": 3,
        "k" * 40: 4,
        "": 5,
        "quoted": 'say "hi" \\ [x] ]',
        "raw": b"\xc3\xa9t\xc3\xa9",
        "nested": {"a": [1, 2]},
        "odd": Unprintable(),
        "multi": "line one\nline two",
    }
    log.info("names", **fields)
    (record,) = arrived(capture, handler, 1)
    assert sd_of(record) == [
        ("user_id", "bob"),
        ("a_b", "1"),
        ("q__", "2"),
        ("caf_", "3"),
        ("k" * 32, "4"),
        ("_", "5"),
        ("quoted", 'say "hi" \\ [x] ]'),
        ("raw", "été"),
        ("nested", "{'a': [1, 2]}"),
        ("odd", "<unprintable Unprintable>"),
        ("multi", "line one\nline two"),
    ]


def test_positional_arguments_format_the_event_like_logging(
    capture: tuple[CollectorThread, Capture], handler: SyslogHandler
) -> None:
    log = bound(handler, "args", SyslogProcessor())
    log.info("user %s paid %d", "bob", 12, order_id=1)
    log.info("by name %(who)s", {"who": "ann"})
    log.info("too few %s %s", "one")  # never raises: the arguments are appended
    log.info("100% sure")
    records = arrived(capture, handler, 4)
    assert [r.message.msg for r in records if r.message] == [
        "user bob paid 12",
        "by name ann",
        "too few %s %s one",
        "100% sure",
    ]
    assert sd_of(records[0]) == [("order_id", "1")]
    assert records[3].message is not None and records[3].message.structured_data == ()


def test_options_sd_id_exclude_overrides_and_static_sd(
    capture: tuple[CollectorThread, Capture],
) -> None:
    collector, _ = capture
    handler = SyslogHandler(
        collector.url("udp"), app_name="sl-opts", structured_data={"origin": {"ip": "10.0.0.1"}}
    )
    try:
        processor = SyslogProcessor(
            "app@32473",
            exclude=("level", "timestamp"),
            overrides=("msgid", "severity", "structured_data"),
        )
        log = bound(
            handler,
            "opts",
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            processor,
        )
        log.info(
            "login",
            msgid="LOGIN",
            severity="notice",
            user="bob",
            structured_data={"auth@32473": {"method": "otp"}},
        )
        log.info("odd override", structured_data=42, msgid="M2")
        records = arrived(capture, handler, 2)
    finally:
        handler.close(5.0)
    first = records[0].message
    assert first is not None
    assert (first.msgid, first.severity, first.msg) == ("LOGIN", Severity.NOTICE, "login")
    assert first.sd_dict() == {
        "origin": {"ip": "10.0.0.1"},
        "auth@32473": {"method": "otp"},
        "app@32473": {"user": "bob"},
    }
    second = records[1].message
    assert second is not None and second.msgid == "M2"
    # a value that is not structured data stays a parameter
    assert second.sd_dict()["app@32473"] == {"structured_data": "42"}

    for bad in ("", "has space", "x" * 33, 'q"', "a]b", "a=b"):
        with pytest.raises(ValueError):
            SyslogProcessor(bad)
    with pytest.raises(ValueError):
        SyslogProcessor(overrides=("hostname",))


def test_configured_globally_with_the_stdlib_logger_factory(
    capture: tuple[CollectorThread, Capture], handler: SyslogHandler
) -> None:
    stdlib_logger(handler, "global")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            SyslogProcessor(),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    try:
        structlog.contextvars.bind_contextvars(trace="t-9")
        structlog.get_logger("test.structlog.global").warning("via configure", n=1)
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
    (record,) = arrived(capture, handler, 1)
    assert record.message is not None and record.message.msg == "via configure"
    assert dict(sd_of(record)) == {"trace": "t-9", "n": "1", "logger": "test.structlog.global"}


def test_structured_data_from_event_dict() -> None:
    event_dict = {
        "event": "e",
        "a": 1,
        "exc_info": True,
        "_record": object(),
        "positional_args": (1,),
        "skip": 2,
    }
    assert structured_data_from_event_dict(event_dict, exclude=("skip",)) == SDElement(
        SD_ID, (("a", "1"),)
    )
    assert structured_data_from_event_dict({"event": "only"}) is None
    with pytest.raises(ValueError):
        structured_data_from_event_dict(event_dict, "bad id")


def test_documented_example(capture: tuple[CollectorThread, Capture], tmp_path: Path) -> None:
    """docs/integrations.md's structlog example, run as a program, delivers what it shows."""
    example = doc_examples(INTEGRATIONS)["structlog"]
    failed = run_shop_integration_example(example, capture, tmp_path / "structlog")
    assert sd_of(failed) == [("customer", "c-17"), ("order_id", "42"), ("logger", "shop.orders")]
