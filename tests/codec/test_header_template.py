"""HeaderTemplate: a sender's RFC 5424 messages from cached text are `format_5424`'s bytes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syslogkit.codec.message import Facility, SDElement, Severity, SyslogMessage
from syslogkit.codec.rfc5424 import HeaderTemplate, format_5424, with_sequence_id

_field = st.none() | st.text(max_size=40) | st.sampled_from(["host", "app", "4242", "ID47"])
_name = st.text(min_size=0, max_size=8) | st.sampled_from(["meta", "sequenceId", "x@1", "k"])
_value = st.text(max_size=12) | st.sampled_from(['v"]\\', "plain"])
_element = st.builds(
    SDElement,
    _name,
    st.lists(st.tuples(_name, _value), max_size=3).map(tuple),
)
_sd = st.lists(_element, max_size=3).map(tuple)
_text = st.text(max_size=200) | st.sampled_from(["plain", "é", "\ud800 lone", "", " ", "x" * 300])
_zone = st.one_of(
    st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m))),
    st.integers(min_value=-86399, max_value=86399).map(lambda s: timezone(timedelta(seconds=s))),
)


def _message(
    facility: int,
    severity: int,
    fields: tuple[str | None, ...],
    sd: tuple[SDElement, ...],
    moment: datetime,
    text: str,
) -> SyslogMessage:
    hostname, app_name, procid, msgid = fields
    return SyslogMessage(
        facility=Facility(facility),
        severity=Severity(severity),
        version=1,
        timestamp=moment,
        hostname=hostname,
        app_name=app_name,
        procid=procid,
        msgid=msgid,
        structured_data=sd,
        msg=text,
    )


@settings(max_examples=500, deadline=None)
@given(
    facility=st.integers(min_value=0, max_value=23),
    severity=st.integers(min_value=0, max_value=7),
    fields=st.tuples(_field, _field, _field, _field),
    sd=_sd,
    sequence=st.none() | st.integers(min_value=1, max_value=2147483647),
    bom=st.sampled_from(["auto", True, False]),
    max_size=st.none() | st.integers(min_value=64, max_value=400),
    created=st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False),
    zone=_zone,
    text=_text,
)
def test_rendered_bytes_are_format_5424s(
    facility: int,
    severity: int,
    fields: tuple[str | None, ...],
    sd: tuple[SDElement, ...],
    sequence: int | None,
    bom: Any,
    max_size: int | None,
    created: float,
    zone: tzinfo,
    text: str,
) -> None:
    """Whatever the template renders is the codec's output for the same message, byte for byte
    (None hands the message to format_5424)."""
    hostname, app_name, procid, msgid = fields
    template = HeaderTemplate(
        facility=facility,
        hostname=hostname,
        app_name=app_name,
        procid=procid,
        msgid=msgid,
        structured_data=sd,
        sequence_id=sequence is not None,
        bom=bom,
        max_size=max_size,
        zone_at=lambda _seconds: zone,
    )
    out = template.render(severity, created, text, sequence)
    if out is None:
        return
    numbered = sd if sequence is None else with_sequence_id(sd, sequence)
    moment = datetime.fromtimestamp(created, zone)
    message = _message(facility, severity, fields, numbered, moment, text)
    assert out == format_5424(message, max_size=max_size, bom=bom)


def test_common_message_is_rendered_and_equals_the_codec() -> None:
    """The case a logging handler sends all day is rendered, not handed back."""
    utc = timezone.utc
    template = HeaderTemplate(
        facility=Facility.LOCAL0,
        hostname="web-1",
        app_name="shop",
        procid="4242",
        msgid=None,
        structured_data=(SDElement("origin@32473", (("ip", "10.0.0.1"),)),),
        zone_at=lambda _seconds: utc,
    )
    created = 1_700_000_000.123456
    out = template.render(Severity.WARNING, created, "payment declined")
    assert out == (
        b'<132>1 2023-11-14T22:13:20.123456Z web-1 shop 4242 - [origin@32473 ip="10.0.0.1"] '
        b"payment declined"
    )


@pytest.mark.parametrize(
    ("sd", "expected"),
    [
        ((), b'[meta sequenceId="7"]'),
        ((SDElement("a@1", (("b", "c"),)),), b'[a@1 b="c"][meta sequenceId="7"]'),
        (
            (SDElement("meta", (("language", "en"), ("sequenceId", "1"))), SDElement("z@1")),
            b'[meta language="en" sequenceId="7"][z@1]',
        ),
    ],
)
def test_sequence_id_joins_meta_or_ends_the_sd(sd: tuple[SDElement, ...], expected: bytes) -> None:
    template = HeaderTemplate(
        facility=1,
        hostname="h",
        app_name="a",
        procid="1",
        msgid="m",
        structured_data=sd,
        sequence_id=True,
    )
    out = template.render(Severity.INFO, 0.5, "hi", 7)
    assert out is not None and out.endswith(b" " + expected + b" hi")
    assert template.render(Severity.INFO, 0.5, "hi") is None  # numbered, but no number given


def test_what_the_template_hands_back_to_the_codec() -> None:
    template = HeaderTemplate(
        facility=1, hostname="h", app_name="a", procid="1", msgid=None, max_size=64
    )
    assert template.render(Severity.INFO, 1.0, "") is None  # no MSG
    assert template.render(Severity.INFO, 1.9999996, "x") is None  # rounds into the next second
    assert template.render(Severity.INFO, 1.0, "\ud800") is None  # UTF-8 cannot encode it
    assert template.render(Severity.INFO, 1.0, "x" * 100) is None  # over max_size: cut by codec
    assert template.render(Severity.INFO, 1.0, "fits") is not None
