"""Every case of shared/vectors/framing.json: the frames FrameDecoder delivers, then each frame's
parse result through parse_5424.

How a case is read:
- ``framing``: ``octet-counting`` runs with ``FrameDecoder("octet")``; ``auto-detect per frame``
  with ``"auto"``; ``non-transparent`` four times, as go-syslog runs it with LF and with NUL: forced
  ``"lf"``/``"nul"`` and ``"auto"``, the input's LFs turned into NULs for the NUL runs.
- ``frames``/``messages``: the octets of each delivered item in order (a `FramingError`'s kept
  ``frame`` for a flagged one).
- ``results``/``strict_results``/``best_effort_results``, one per item: ``ok`` parses in strict mode
  (with the fields given); ``error`` with ``[col N]`` is a parse error at 1-based column N + 1
  (go-syslog counts from 0); ``partial`` is best-effort's partial; any other ``error`` is a
  `FramingError` item. An ``ok`` result that also names an ``error`` is a `FramingError` whose kept
  frame parses (a last frame without its trailer).
- go-syslog's strict stream parser stops at the first bad message, so its ``strict_results`` list
  is shorter than the frames; FrameDecoder goes on (the vector's own note says a collector should),
  and the strict results are checked for the frames they cover.
- ``"<N chars>"``/``"<first N chars>"`` and ``"<octet frame containing invalid UTF-8>"`` in the
  vectors are placeholders, built here.
Where a case departs from the vector, DEPARTURES says why and names the RFC section.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from syslogkit.codec.framing import FrameDecoder, FramingError, frame
from syslogkit.codec.message import ParseError, SyslogMessage
from syslogkit.codec.rfc5424 import parse_5424

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"
FRAMING_JSON = VECTORS / "framing.json"

Item = bytes | FramingError

# Cases whose expectation syslogkit deliberately does not follow, keyed by their first chunk.
DEPARTURES: dict[str, str] = {
    "": (
        "RFC 6587 §3.4.1 (TCP-DATA = *SYSLOG-FRAME): a stream with no frame is valid; a "
        "connection that closes without sending (a health check) is no error, so end() gives []"
    ),
    "<octet frame containing invalid UTF-8>": (
        "RFC 6587 §3.4.1 (octet counting 'allows for the transmission of all characters') and "
        "RFC 5424 §6.4 (MSG-ANY is any octets): the framer delivers the octets; decoding is the "
        "parser's business (it keeps the raw bytes and replaces in the text)"
    ),
}
# Not a departure in the result (it is an error) but in the recovery: the vector records Vector's
# "skip past the SP"; RFC 6587 §3.4.1 defines no recovery, and resuming after a space would read
# the message's own words as counts. FrameDecoder resumes after the next LF or NUL (see
# test_framing.py::test_forced_octet_reports_a_missing_count_and_resyncs_at_the_next_lf).
RESYNC_AT_LF = "1a2 <13>1 - - - - - -"

# framing.json's copy of go-syslog's "Small Message Size" input was NFC-normalised on its way into
# the file: go-syslog's "κόσμε" has U+1F79 (3 octets; its example prints the MSG as len=11), the
# JSON has U+03CC (2 octets), so the third frame holds 37 octets under a MSG-LEN of 38. The tests
# restore the original octets; test_the_nfc_damaged_vector_as_stored_... checks what RFC 6587
# §3.4.1 (MSG-LEN counts octets) makes of the stored ones.
NFC_DAMAGED = "38 <2>1 - host.local su - - - \u03ba\u03cc\u03c3\u03bc\u03b5"
NFC_RESTORED = "38 <2>1 - host.local su - - - \u03ba\u1f79\u03c3\u03bc\u03b5"

_PLACEHOLDER = re.compile(r"<(\d+) chars>")
_FIRST = re.compile(r"<first (\d+) chars>")
_COL = re.compile(r"\[col (\d+)\]")
_FILLER = "".join(chr(c) for c in range(ord("a"), ord("z") + 1))


def _load() -> list[Any]:
    if not FRAMING_JSON.is_file():
        return [pytest.param(None, "auto", False, id="framing.json-missing")]
    cases = json.loads(FRAMING_JSON.read_text(encoding="utf-8"))
    params = []
    for index, case in enumerate(cases):
        source = _source_name(case["source"])
        for mode, nul in _modes(case["framing"]):
            name = f"{index:02d}-{source}-{mode}{'-with-nul-trailers' if nul else ''}"
            params.append(pytest.param(case, mode, nul, id=name))
    return params


def _source_name(source: str) -> str:
    words = source.split()
    if words[0] == "RFC":
        return "RFC" + words[1]
    owner, _, repo = words[0].partition("/")
    return owner if repo in ("", "src") else repo


def _modes(framing: str) -> list[tuple[str, bool]]:
    if framing == "octet-counting":
        return [("octet", False)]
    if framing.startswith("auto-detect"):
        return [("auto", False)]
    if framing.startswith("non-transparent"):
        return [("lf", False), ("auto", False), ("nul", True), ("auto", True)]
    raise AssertionError(f"framing.json: unknown framing {framing!r}")


def _filler(n: int) -> str:
    return (_FILLER * (n // len(_FILLER) + 1))[:n]


def _stream(case: dict[str, Any], nul: bool) -> list[bytes]:
    chunks = []
    for chunk in case["input_chunks"]:
        if chunk == "<octet frame containing invalid UTF-8>":
            chunks.append(frame(b"<13>1 - host app - - - caf\xe9 \xff\xfe"))
            continue
        chunk = _PLACEHOLDER.sub(lambda m: _filler(int(m[1])), chunk)
        chunk = chunk.replace(NFC_DAMAGED, NFC_RESTORED)
        data = chunk.encode("utf-8")
        chunks.append(data.replace(b"\n", b"\0") if nul else data)
    return chunks


def _expected_octets(case: dict[str, Any], nul: bool) -> list[bytes] | None:
    expect = case["expect"]
    listed = expect.get("frames", expect.get("messages"))
    if listed is None:
        return None
    out = []
    for text in listed:
        text = _FIRST.sub(lambda m: _filler(int(m[1])), text)
        data = text.encode("utf-8")
        out.append(data.replace(b"\n", b"\0") if nul else data)
    return out


def _decode(case: dict[str, Any], mode: str, nul: bool) -> list[Item]:
    options = case.get("options", {})
    decoder = FrameDecoder(mode, max_frame=options.get("max_message_length", 8192))
    items: list[Item] = []
    for chunk in _stream(case, nul):
        items += decoder.feed(chunk)
    return items + decoder.end()


def _octets(item: Item) -> bytes | None:
    return item if isinstance(item, bytes) else item.frame


def _need_case(case: dict[str, Any] | None) -> dict[str, Any]:
    if case is None:
        pytest.fail(
            f"{FRAMING_JSON} is missing: the framing vectors live in shared/vectors next to the "
            "repository (Path(__file__).resolve().parents[3] / 'shared' / 'vectors')"
        )
    return case


@pytest.mark.parametrize(("case", "mode", "nul"), _load())
def test_framing_vector_frames(case: dict[str, Any] | None, mode: str, nul: bool) -> None:
    case = _need_case(case)
    first = case["input_chunks"][0]
    items = _decode(case, mode, nul)
    expect = case["expect"]

    if first in DEPARTURES:
        if first == "":
            assert items == [], DEPARTURES[first]
        else:
            (payload,) = _stream(case, nul)
            assert items == [payload.split(b" ", 1)[1]], DEPARTURES[first]
        return

    expected = _expected_octets(case, nul)
    if expected is not None:
        assert [_octets(item) for item in items] == expected

    results = expect.get("results", expect.get("best_effort_results"))
    if results is not None:
        assert len(items) == len(results), "one delivered item per expected result"
    if len(expect.get("strict_results", [])) > len(items):
        pytest.fail("fewer frames than strict results")
    if first == RESYNC_AT_LF:
        assert items and all(isinstance(i, FramingError) for i in items)
        assert items[0].kind == FramingError.BAD_COUNT  # type: ignore[union-attr]
    if "error" in expect and "results" not in expect and first != RESYNC_AT_LF:
        assert any(isinstance(i, FramingError) for i in items)

    # Framing errors the results name are FramingError items, and only those.
    for item, result in zip(items, results or [], strict=results is not None):
        kind = _classify(result)
        if kind == "framing":
            assert isinstance(item, FramingError), result
        elif kind in ("parse", "partial"):
            assert isinstance(item, bytes), result


def _classify(result: dict[str, Any]) -> str:
    if result.get("ok"):
        return "ok-flagged" if "error" in result else "ok"
    if "partial" in result:
        return "partial"
    error = result["error"]
    if _COL.search(error):
        return "parse"
    return "framing"


def _column(error: str) -> int:
    match = _COL.search(error)
    assert match, error
    return int(match[1]) + 1  # go-syslog's 0-based column; syslogkit reports 1-based


def _check_fields(msg: SyslogMessage, result: dict[str, Any]) -> None:
    if "pri" in result:
        assert msg.pri == result["pri"]
    if "version" in result:
        assert msg.version == result["version"]
    if "timestamp" in result:
        assert msg.timestamp == datetime.fromisoformat(result["timestamp"].replace("Z", "+00:00"))
    for field in ("hostname", "app_name", "procid", "msgid", "msg"):
        if field in result:
            value = getattr(msg, field)
            if isinstance(value, str):
                value = unicodedata.normalize("NFC", value)  # see NFC_DAMAGED
            assert value == result[field], field


def _check_result(item: Item, result: dict[str, Any], mode: str) -> None:
    kind = _classify(result)
    if kind == "framing":
        assert isinstance(item, FramingError), result
        return
    if kind == "ok-flagged":
        assert isinstance(item, FramingError) and item.frame is not None, result
        assert not item.truncated
        _check_fields(parse_5424(item.frame, "strict"), result)
        return
    assert isinstance(item, bytes), result
    if kind == "ok":
        _check_fields(parse_5424(item, mode), result)
        return
    with pytest.raises(ParseError) as info:
        parse_5424(item, mode)
    assert info.value.column == _column(result["error"])
    if kind == "partial":
        assert info.value.partial is not None
        _check_fields(info.value.partial, result["partial"])


@pytest.mark.parametrize(("case", "mode", "nul"), _load())
def test_framing_vector_results(case: dict[str, Any] | None, mode: str, nul: bool) -> None:
    case = _need_case(case)
    expect = case["expect"]
    lists = [
        (name, expect[name])
        for name in ("results", "strict_results", "best_effort_results")
        if name in expect
    ]
    if case["input_chunks"][0] in DEPARTURES:
        pytest.skip(DEPARTURES[case["input_chunks"][0]])
    if not lists:
        pytest.skip("the case states frames only (checked in test_framing_vector_frames)")
    items = _decode(case, mode, nul)
    for name, results in lists:
        parse_mode = "best_effort" if name == "best_effort_results" else "strict"
        # strict_results may cover fewer frames than delivered (go-syslog stops; see the docs)
        for item, result in zip(items, results, strict=name != "strict_results"):
            _check_result(item, result, parse_mode)


def test_the_incomplete_octet_frame_vector_parses_best_effort_as_its_note_says() -> None:
    # framing.json "16 <1>1": best effort parses the 4 octets received (pri 1, version 1, col 4).
    decoder = FrameDecoder("octet")
    assert decoder.feed(b"16 <1>1") == []
    (error,) = decoder.end()
    assert isinstance(error, FramingError) and error.frame == b"<1>1"
    with pytest.raises(ParseError) as info:
        parse_5424(error.frame, "best_effort")
    assert info.value.column == 5
    assert info.value.partial is not None
    assert (info.value.partial.pri, info.value.partial.version) == (1, 1)


def test_the_nfc_damaged_vector_as_stored_leaves_its_third_frame_one_octet_short() -> None:
    """The stored (normalised) octets: a 37-octet body under MSG-LEN 38 is incomplete at end."""
    stored = (
        "48 <1>1 2003-10-11T22:14:15.003Z host.local - - - -25 <3>1 - host.local - - - -"
        + NFC_DAMAGED
    ).encode()
    decoder = FrameDecoder("octet")
    items = decoder.feed(stored)
    assert len(items) == 2 and all(isinstance(i, bytes) for i in items)
    (error,) = decoder.end()
    assert isinstance(error, FramingError) and error.kind == FramingError.INCOMPLETE
    assert error.frame == NFC_DAMAGED.split(" ", 1)[1].encode()
