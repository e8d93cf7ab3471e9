"""RFC 5424 parsing, the fast path: one compiled regex over the decoded text.

It accepts only valid strict RFC 5424; anything else (a fault, odd bytes, a duplicate SD-ID)
returns None and the scanner decides, with the column of the fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from syslogkit.codec._rfc3339 import fromisoformat
from syslogkit.codec.message import (
    Facility,
    SDElement,
    Severity,
    SyslogMessage,
    build_message,
    facility_of,
    severity_of,
)
from syslogkit.codec.rfc5424.grammar import (
    APP_NAME,
    HOSTNAME,
    MSGID,
    NAME_RE,
    PRI_MAX,
    PROCID,
    SECFRAC,
    VALUE_RE,
    VERSION_MAX,
    unescape,
)

__all__ = ["parse_fast"]

_PARAM_RE: Final = " " + NAME_RE + '="' + VALUE_RE + '"'
_TS_RE: Final = (
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,"
    + str(SECFRAC)
    + r"})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
#: The whole strict grammar up to the end of STRUCTURED-DATA; a NILVALUE captures None.
_FAST: Final = re.compile(
    r"(?:<([0-9]{1,3})>)?([1-9][0-9]{0,2}) (?:-|("
    + _TS_RE
    + "))"
    + "".join(f" (?:-|([!-~]{{1,{n}}}))" for n in (HOSTNAME, APP_NAME, PROCID, MSGID))
    + " "
    + r"(?:-|((?:\["
    + NAME_RE
    + "(?:"
    + _PARAM_RE
    + r")*+\])++))",
    re.S | re.A,
)
#: Over SD text the fast regex accepted: ("id", "", "") opens an element, ("", name, value) a param.
_TOKEN: Final = re.compile(
    r"\[(" + NAME_RE + ")| (" + NAME_RE + ')="(' + VALUE_RE + ')"', re.S | re.A
)

_fast_match: Final = _FAST.match
_find_tokens: Final = _TOKEN.findall
#: Over an SD-ELEMENT without a backslash that the fast regex accepted, a simpler pattern reads
#: the same params faster: no value holds '"' or ']', no name holds '=', SP, ']' or '"'.
_find_plain_params: Final = re.compile(r' ([^=]+)="([^"]*)"').findall

#: PRIVAL text (no leading zeros, 0..191) -> (Facility, Severity).
_PRI: Final[dict[str, tuple[Facility, Severity]]] = {
    str(p): (facility_of(p), severity_of(p)) for p in range(PRI_MAX + 1)
}
_VERSIONS: Final[dict[str, int]] = {str(v): v for v in range(1, VERSION_MAX + 1)}


_SDBuild = Callable[[str, tuple[tuple[str, str], ...]], SDElement]


def _element_builder() -> _SDBuild:
    """SDElement without the frozen-dataclass `__init__` (which goes through
    `object.__setattr__`), when SDElement is a plain slotted dataclass without `__post_init__`."""
    slots = vars(SDElement).get("__slots__", ())
    if set(slots) != {"id", "params"} or hasattr(SDElement, "__post_init__"):
        return SDElement
    new = object.__new__
    set_id = vars(SDElement)["id"].__set__
    set_params = vars(SDElement)["params"].__set__

    def build(sd_id: str, params: tuple[tuple[str, str], ...]) -> SDElement:
        element = new(SDElement)
        set_id(element, sd_id)
        set_params(element, params)
        return element

    probe = (("k", "v"),)
    if build("x", probe) != SDElement("x", probe) or hash(build("x", ())) != hash(SDElement("x")):
        return SDElement
    return build


_element: Final = _element_builder()


def _fast_sd(sd: str) -> tuple[SDElement, ...] | None:
    """SDElements of an SD text the fast regex accepted; None when an SD-ID repeats."""
    if "\\" in sd:
        return _escaped_sd(sd)
    # No escapes (the common case): no value holds '"' or ']', so "][" only joins elements, the
    # first SP of an element ends its SD-ID, and one findall gives its params as they are.
    out = []
    for body in sd[1:-1].split("]["):
        space = body.find(" ")
        if space < 0:
            out.append(_element(body, ()))
        else:
            out.append(_element(body[:space], tuple(_find_plain_params(body, space))))
    if len(out) > 1 and len({element.id for element in out}) != len(out):
        return None
    return tuple(out)


def _escaped_sd(sd: str) -> tuple[SDElement, ...] | None:
    """`_fast_sd` for SD text with a backslash: token by token, values unescaped."""
    out = []
    ids: list[str] = []
    params: list[tuple[str, str]] = []
    for sd_id, name, value in _find_tokens(sd):
        if sd_id:
            if ids:
                out.append(_element(ids[-1], tuple(params)))
                params = []
            ids.append(sd_id)
        else:
            params.append((name, unescape(value)))
    out.append(_element(ids[-1], tuple(params)))
    if len(ids) > 1 and len(set(ids)) != len(ids):
        return None
    return tuple(out)


def parse_fast(text: str, raw: bytes, no_pri_ok: bool) -> SyslogMessage | None:
    """The message, when `text` is valid strict RFC 5424; None means "ask the scanner"."""
    m = _fast_match(text)
    if m is None:
        return None
    pri, version, ts, hostname, app_name, procid, msgid, sd = m.groups()
    if pri is None:
        if not no_pri_ok:
            return None
        facility = severity = None
    else:
        found = _PRI.get(pri)
        if found is None:
            return None
        facility, severity = found
    end = m.end()
    if end == len(text):
        msg = None
        bom = False
    elif text[end] == " ":
        msg = text[end + 1 :]
        if msg[:1] == "\ufeff":
            msg = msg[1:]
            bom = True
        else:
            bom = False
            if not msg:
                msg = None
    else:
        return None
    if ts is None:
        moment = None
    else:
        try:
            moment = fromisoformat(ts)
        except ValueError:  # a date the calendar lacks, or year 0: the scanner says which
            return None
    if sd is None:
        elements: tuple[SDElement, ...] | None = ()
    else:
        elements = _fast_sd(sd)
        if elements is None:
            return None
    return build_message(
        facility,
        severity,
        _VERSIONS[version],
        moment,
        hostname,
        app_name,
        procid,
        msgid,
        elements,
        msg,
        bom,
        raw,
        None,
    )
