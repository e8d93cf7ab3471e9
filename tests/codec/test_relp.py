"""RELP state machines: frame codec, client and server sessions, driven in memory."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syslogkit.codec.relp import (
    MAX_TXNR,
    Acked,
    Closed,
    CloseRequested,
    MessageReceived,
    OpenFailed,
    OpenRequested,
    ProtocolViolation,
    Refused,
    RelpClient,
    RelpFrame,
    RelpParser,
    RelpProtocolError,
    RelpServer,
    RelpStateError,
    ServerClose,
    SessionOpened,
    encode_frame,
    next_txnr,
    parse_offers,
    parse_rsp,
)

RELP_MD = Path(__file__).resolve().parents[3] / "shared" / "RELP.md"
LIBRELP = "librelp,1.11.0,http://librelp.adiscon.com"


def relp_md_exchange() -> list[tuple[str, bytes]]:
    """The C:/S: lines of RELP.md's example, as (side, bytes on the wire)."""
    if not RELP_MD.is_file():
        pytest.fail(f"{RELP_MD} is missing: the RELP notes live in shared/ next to the repository")
    lines = re.findall(r"^([CS]): (.*)$", RELP_MD.read_text(encoding="utf-8"), re.MULTILINE)
    assert lines, "RELP.md has no C:/S: exchange"
    return [(side, text.replace("\\n", "\n").encode() + b"\n") for side, text in lines]


def opened_pair(window: int = 128, **kw: int) -> tuple[RelpClient, RelpServer]:
    client = RelpClient(window=window, software="syslogkit,test", **kw)
    server = RelpServer(software="syslogkit,test")
    assert isinstance(server.receive_data(client.open())[0], OpenRequested)
    assert isinstance(client.receive_data(server.data_to_send())[0], SessionOpened)
    return client, server


def pump(client: RelpClient, server: RelpServer) -> list[object]:
    """Client's queued bytes to the server; returns the server's events."""
    return list(server.receive_data(client.data_to_send()))


# -- the exchange of RELP.md -------------------------------------------------------------------


def test_the_exchange_in_relp_md_byte_for_byte() -> None:
    wire = relp_md_exchange()
    assert [side for side, _ in wire] == ["C", "S", "C", "S", "C", "S", "S"]
    message = b"<13>1 2026-01-01T00:00:00Z host app - - - hello"
    client = RelpClient(software="syslogkit,0.1")
    server = RelpServer(software=LIBRELP)

    assert client.open() == wire[0][1]
    assert server.receive_data(wire[0][1]) == [
        OpenRequested(
            (("relp_version", "0"), ("relp_software", "syslogkit,0.1"), ("commands", "syslog"))
        )
    ]
    assert server.data_to_send() == wire[1][1]
    assert client.receive_data(wire[1][1]) == [
        SessionOpened((("relp_version", "0"), ("relp_software", LIBRELP), ("commands", "syslog")))
    ]

    assert client.send(message) == 2
    assert client.data_to_send() == wire[2][1]
    assert server.receive_data(wire[2][1]) == [MessageReceived(2, message)]
    server.ack(2)
    assert server.data_to_send() == wire[3][1]
    assert client.receive_data(wire[3][1]) == [Acked(2)]
    assert client.unacked() == []

    assert client.close() == wire[4][1]
    assert server.receive_data(wire[4][1]) == [CloseRequested(3)]
    assert server.data_to_send() == wire[5][1] + wire[6][1]
    assert client.receive_data(wire[5][1] + wire[6][1]) == [Closed(), ServerClose()]
    assert client.state == "closed"


# -- frame codec ---------------------------------------------------------------------------------


def test_encode_frame_with_and_without_data() -> None:
    assert encode_frame(7, "syslog", b"a b\nc") == b"7 syslog 5 a b\nc\n"
    assert encode_frame(3, "rsp") == b"3 rsp 0\n"
    assert encode_frame(0, "serverclose") == b"0 serverclose 0\n"


@pytest.mark.parametrize(
    ("txnr", "command"),
    [(-1, "rsp"), (MAX_TXNR + 1, "rsp"), (1, ""), (1, "sys log"), (1, "a" * 33)],
)
def test_encode_frame_refuses_bad_txnr_or_command(txnr: int, command: str) -> None:
    with pytest.raises(ValueError):
        encode_frame(txnr, command)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.integers(0, MAX_TXNR),
            st.sampled_from(["open", "syslog", "rsp", "close", "serverclose"]),
            st.binary(max_size=60),
        ),
        max_size=8,
    ),
    st.lists(st.integers(0, 2000), max_size=12),
)
def test_parser_gives_the_same_frames_however_the_stream_is_split(
    frames: list[tuple[int, str, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(*f) for f in frames)
    parser = RelpParser()
    got: list[RelpFrame] = []
    last = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        got += parser.feed(stream[last:cut])
        last = cut
    assert got == [RelpFrame(*f) for f in frames]
    assert parser.buffered == 0


def test_sessions_report_the_octets_they_hold_for_an_incomplete_frame() -> None:
    client, server = opened_pair()
    assert server.receive_data(b"2 syslog 10 <13>") == []
    assert server.buffered == len(b"<13>")  # the header is parsed; DATA so far is held
    assert client.receive_data(b"2 rs") == []
    assert client.buffered == 4


def test_parser_waits_for_a_header_still_arriving() -> None:
    parser = RelpParser()
    assert parser.feed(b"12 sys") == []
    assert parser.feed(b"log 3") == []
    assert parser.feed(b" ab") == []
    assert parser.feed(b"c\n1") == [RelpFrame(12, "syslog", b"abc")]


@pytest.mark.parametrize(
    "data",
    [
        b"x open 0\n",  # TXNR not a number
        b"1 op3n 0\n",  # COMMAND not letters
        b"1  open 0\n",  # two spaces
        b"1234567890 open 0\n",  # TXNR over 9 digits
        b"1 " + b"a" * 33 + b" 0\n",  # COMMAND over 32 letters
        b"1 syslog 3 abcX",  # no LF trailer after DATA
        b"1 syslog 3\n",  # DATALEN without DATA
        b"1 syslog 131073 ",  # DATALEN over the 128 KiB default
        b"1 syslog -1 x\n",  # negative DATALEN
        b"\n1 rsp 0\n",  # stray LF before a frame
        b"1 rsp 0 x" + b"y" * 60,  # long garbage instead of a header
    ],
)
def test_malformed_frames_are_a_protocol_error(data: bytes) -> None:
    parser = RelpParser()
    with pytest.raises(RelpProtocolError):
        parser.feed(data)
    with pytest.raises(RelpProtocolError):  # the parser stays failed: RELP closes the session
        parser.feed(b"1 rsp 0\n")


def test_datalen_limit_is_configurable() -> None:
    assert RelpParser(max_data=3).feed(b"1 syslog 3 abc\n") == [RelpFrame(1, "syslog", b"abc")]
    with pytest.raises(RelpProtocolError, match="limit"):
        RelpParser(max_data=3).feed(b"1 syslog 4 ")


def test_protocol_error_keeps_the_frames_decoded_before_the_fault() -> None:
    with pytest.raises(RelpProtocolError) as info:
        RelpParser().feed(b"2 rsp 6 200 OK\n3 rsp 6 200 OKX")
    assert info.value.frames == [RelpFrame(2, "rsp", b"200 OK")]


def test_rsp_and_offers_parse() -> None:
    assert parse_rsp(b"200 OK") == (200, "OK", b"")
    assert parse_rsp(b"500 no\nextra") == (500, "no", b"extra")
    with pytest.raises(RelpProtocolError):
        parse_rsp(b"OK")
    assert parse_offers(b"relp_version=0\ncommands=syslog,starttls\nflag") == (
        ("relp_version", "0"),
        ("commands", "syslog,starttls"),
        ("flag", ""),
    )


# -- client ----------------------------------------------------------------------------------------


def test_client_offers_version_0_syslog_and_its_software() -> None:
    frame = RelpClient().open()
    assert frame.startswith(b"1 open ")
    offers = dict(parse_offers(frame.split(b" ", 3)[3][:-1]))
    assert offers["relp_version"] == "0"
    assert offers["commands"] == "syslog"
    assert offers["relp_software"].startswith("syslogkit,")


def test_client_cannot_send_before_the_session_is_open() -> None:
    client = RelpClient()
    assert not client.can_send
    with pytest.raises(RelpStateError):
        client.send(b"x")
    client.open()
    assert not client.can_send
    with pytest.raises(RelpStateError):
        client.send(b"x")


def test_window_limits_unacknowledged_messages() -> None:
    client, server = opened_pair(window=2)
    client.send(b"<13>a")
    assert client.can_send
    client.send(b"<13>b")
    assert not client.can_send
    with pytest.raises(RelpStateError, match="window"):
        client.send(b"<13>c")
    events = pump(client, server)
    server.ack(events[0].txnr)  # type: ignore[attr-defined]
    assert client.receive_data(server.data_to_send()) == [Acked(2)]
    assert client.can_send
    assert client.send(b"<13>c") == 4


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"200 OK\nrelp_version=1\ncommands=syslog", "relp_version"),
        (b"200 OK\ncommands=syslog", "relp_version"),
        (b"200 OK\nrelp_version=0\ncommands=starttls", "syslog"),
        (b"OK", "code"),
    ],
)
def test_client_rejects_an_open_answer_it_cannot_use(answer: bytes, reason: str) -> None:
    client = RelpClient()
    client.open()
    (event,) = client.receive_data(encode_frame(1, "rsp", answer))
    assert isinstance(event, ProtocolViolation)
    assert reason in event.reason
    assert client.state == "failed" and not client.can_send


def test_client_reports_a_refused_open() -> None:
    client = RelpClient()
    client.open()
    assert client.receive_data(encode_frame(1, "rsp", b"500 go away")) == [
        OpenFailed(500, "go away")
    ]
    assert not client.can_send


def test_client_reports_a_refused_message_and_forgets_it() -> None:
    client, server = opened_pair()
    txnr = client.send(b"<13>x")
    pump(client, server)
    server.ack(txnr, ok=False, text="queue full")
    assert client.receive_data(server.data_to_send()) == [Refused(txnr, 500, "queue full")]
    assert client.unacked() == []


def test_malformed_server_data_is_a_violation_after_the_good_events() -> None:
    client, _ = opened_pair()
    client.send(b"<13>a")
    client.send(b"<13>b")
    events = client.receive_data(b"2 rsp 6 200 OK\n3 rsp 6 200 OKgarbage")
    assert events[0] == Acked(2)
    assert isinstance(events[1], ProtocolViolation)
    assert client.unacked() == [(3, b"<13>b")]
    assert client.receive_data(b"3 rsp 6 200 OK\n") == []  # failed: nothing more is believed


def test_client_treats_an_answer_for_an_unknown_txnr_as_a_violation() -> None:
    client, _ = opened_pair()
    (event,) = client.receive_data(b"9 rsp 6 200 OK\n")
    assert isinstance(event, ProtocolViolation)


def test_unacked_messages_after_a_lost_connection_are_listed_in_order_and_resent() -> None:
    client, server = opened_pair()
    messages = [b"<13>m%d" % i for i in range(5)]
    for m in messages:
        client.send(m)
    received = pump(client, server)
    for event in received[:2]:
        server.ack(event.txnr)  # type: ignore[attr-defined]
    assert client.receive_data(server.data_to_send()) == [Acked(2), Acked(3)]
    # The connection drops here: the server took m2..m4 but never answered.
    left = client.connection_lost()
    assert left == [(4, messages[2]), (5, messages[3]), (6, messages[4])]
    assert client.unacked() == left

    client2, server2 = opened_pair()
    for _, message in left:
        client2.send(message)
    again = pump(client2, server2)
    assert [e.message for e in again] == messages[2:]  # type: ignore[attr-defined]


def test_serverclose_hint_stops_sending_and_keeps_unacked_for_the_next_session() -> None:
    client, server = opened_pair()
    client.send(b"<13>a")
    pump(client, server)
    hint = server.close()
    assert hint == b"0 serverclose 0\n"
    assert client.receive_data(hint) == [ServerClose()]
    assert not client.can_send
    assert client.unacked() == [(2, b"<13>a")]


def test_txnr_wraps_from_999999999_to_1() -> None:
    assert next_txnr(MAX_TXNR) == 1
    assert next_txnr(1) == 2
    client, server = opened_pair(initial_txnr=MAX_TXNR - 1)
    assert client.send(b"<13>a") == MAX_TXNR
    assert client.send(b"<13>b") == 1
    assert client.send(b"<13>c") == 2
    events = pump(client, server)
    assert [e.txnr for e in events] == [MAX_TXNR, 1, 2]  # type: ignore[attr-defined]
    for e in events:
        server.ack(e.txnr)  # type: ignore[attr-defined]
    assert client.receive_data(server.data_to_send()) == [Acked(MAX_TXNR), Acked(1), Acked(2)]


def test_close_sends_what_is_queued_first() -> None:
    client, _ = opened_pair()
    client.send(b"<13>a")
    out = client.close()
    assert out == b"2 syslog 5 <13>a\n3 close 0\n"
    assert client.data_to_send() == b""


# -- server ----------------------------------------------------------------------------------------


def test_out_of_order_acks_are_held_until_earlier_ones_are_given() -> None:
    client, server = opened_pair()
    for m in (b"<13>a", b"<13>b", b"<13>c"):
        client.send(m)
    pump(client, server)
    server.ack(4)
    server.ack(3)
    assert server.data_to_send() == b""
    assert server.unanswered == 3
    server.ack(2)
    assert server.data_to_send() == b"2 rsp 6 200 OK\n3 rsp 6 200 OK\n4 rsp 6 200 OK\n"
    assert server.unanswered == 0


def test_close_answer_waits_for_the_messages_before_it() -> None:
    client, server = opened_pair()
    client.send(b"<13>a")
    assert server.receive_data(client.close()) == [MessageReceived(2, b"<13>a"), CloseRequested(3)]
    assert server.data_to_send() == b""
    server.ack(2)
    assert server.data_to_send() == b"2 rsp 6 200 OK\n3 rsp 0\n0 serverclose 0\n"


def test_server_answers_open_with_version_0_whatever_the_client_offers() -> None:
    server = RelpServer(software="")
    server.receive_data(encode_frame(1, "open", b"relp_version=5\ncommands=syslog"))
    assert server.data_to_send() == encode_frame(
        1, "rsp", b"200 OK\nrelp_version=0\ncommands=syslog"
    )


def test_server_refuses_a_client_that_does_not_offer_syslog() -> None:
    server = RelpServer(software="")
    (event,) = server.receive_data(encode_frame(1, "open", b"relp_version=0\ncommands=foo"))
    assert isinstance(event, OpenRequested)
    out = server.data_to_send()
    assert out.startswith(b"1 rsp ") and b" 500 " in out
    assert out.endswith(b"0 serverclose 0\n")


@pytest.mark.parametrize(
    "data",
    [
        b"1 syslog 3 abc\n",  # first command is not open
        b"1 open 15 commands=syslog\n3 syslog 1 a\n",  # TXNR skips 2
        b"1 open 15 commands=syslog\n2 rsp 6 200 OK\n",  # a client does not answer
        b"1 open 15 commands=syslog\n2 open 15 commands=syslog\n",  # open twice
        b"1 open 15 commands=syslog\n2 close 0\n3 syslog 1 a\n",  # after close
        b"1 open 15 commands=syslog\n2 syslog 1 ab\n",  # malformed frame
    ],
)
def test_server_reports_protocol_violations(data: bytes) -> None:
    server = RelpServer()
    events = server.receive_data(data)
    assert isinstance(events[-1], ProtocolViolation)
    assert server.state == "failed"


def test_unknown_command_is_answered_500_in_order() -> None:
    client, server = opened_pair()
    client.send(b"<13>a")
    pump(client, server)
    assert server.receive_data(b"3 starttls 0\n") == []
    assert server.data_to_send() == b""
    server.ack(2)
    assert server.data_to_send() == b"2 rsp 6 200 OK\n3 rsp 25 500 command not supported\n"


def test_ack_of_a_txnr_not_waiting_is_an_error() -> None:
    client, server = opened_pair()
    client.send(b"<13>a")
    pump(client, server)
    server.ack(2)
    with pytest.raises(ValueError):
        server.ack(2)
    with pytest.raises(ValueError):
        server.ack(77)


# -- client and server together ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_client_and_server_driven_together_deliver_every_message_once_in_order(seed: int) -> None:
    rng = random.Random(seed)
    client, server = opened_pair(window=rng.choice([1, 3, 16]))
    messages = [b"<13>1 - h app - - - message %d" % i for i in range(300)]
    to_send = list(messages)
    received: list[bytes] = []
    pending: list[int] = []
    acked: list[int] = []
    sent_txnrs: list[int] = []
    to_server = b""
    to_client = b""
    for _ in range(100_000):
        if not (to_send or pending or client.unacked() or to_server or to_client):
            break
        step = rng.random()
        if step < 0.3 and to_send and client.can_send:
            sent_txnrs.append(client.send(to_send.pop(0)))
            to_server += client.data_to_send()
        elif step < 0.5 and to_server:
            cut = rng.randint(1, len(to_server))
            for event in server.receive_data(to_server[:cut]):
                assert isinstance(event, MessageReceived)
                received.append(event.message)
                pending.append(event.txnr)
            to_server = to_server[cut:]
        elif step < 0.7 and pending:
            server.ack(pending.pop(rng.randrange(len(pending))))  # any order: held back
            to_client += server.data_to_send()
        elif step < 0.9 and to_client:
            cut = rng.randint(1, len(to_client))
            for event in client.receive_data(to_client[:cut]):
                assert isinstance(event, Acked)
                acked.append(event.txnr)
            to_client = to_client[cut:]
        elif not to_send and not client.unacked() and not to_server and not to_client:
            break
    assert received == messages
    assert acked == sent_txnrs  # answers arrive in sending order
    assert client.unacked() == []
    assert server.receive_data(client.close()) == [CloseRequested(next_txnr(sent_txnrs[-1]))]
    assert client.receive_data(server.data_to_send()) == [Closed(), ServerClose()]
