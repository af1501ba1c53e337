"""The serial transport against a twin over a real pty and over TCP: framing, timeouts, retries only for
idempotent queries, resynchronisation after late answers, reconnect after a dropped line, and the transcript.

The same tests run on the in-process loopback link (on a manual clock) as well: the driver tests rely on it, so it
must show every behaviour the real lines show."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.clock import ManualClock
from instruments.errors import Disconnected, InstrumentTimeout, ProtocolError
from instruments.transport import SerialSettings, SerialTransport
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.server import FaultPlan, TwinEndpoint, TwinProtocol, TwinServer

FAST = SerialSettings(timeout_s=0.3, grace_s=0.4, backoff_s=0.01, retries=2)


class EchoDevice(TwinProtocol):
    """Answers `OK <request>`; `SET …` requests are not answered (as NAMUR and SCPI settings are not)."""

    def handle(self, request: str) -> list[str]:
        return [] if request.startswith("SET") else [f"OK {request}"]

    def error_reply(self, request: str) -> list[str]:
        return ["ERR 1"]

    def answers(self, request: str) -> bool:
        return not request.startswith("SET")


@pytest.fixture(params=["pty", "tcp", "loopback"])
def line(request: pytest.FixtureRequest) -> Iterator[tuple[TwinEndpoint, SerialTransport]]:
    server: TwinServer | LoopbackTwin
    if request.param == "loopback":
        server = LoopbackTwin(EchoDevice(), FaultPlan(late_s=0.5), name="echo", clock=ManualClock())
        transport = SerialTransport(server.url, FAST, instrument="echo", opener=server.open_link, clock=server.clock)
    else:
        server = TwinServer(EchoDevice(), FaultPlan(late_s=0.5), name="echo")
        url = server.start_pty() if request.param == "pty" else server.start_tcp()
        transport = SerialTransport(url, FAST, instrument="echo")
    transport.open()
    yield server, transport
    transport.close()
    server.stop()


def test_a_dropped_loopback_line_stays_dropped_until_reopened() -> None:
    """What a pulled cable does: the old link raises on every use, a reopened one works."""
    server = LoopbackTwin(EchoDevice(), FaultPlan(script=["disconnect"]), name="echo")
    link = server.open_link(server.url, FAST)
    link.write(b"A\r\n")
    with pytest.raises(OSError, match="dropped"):
        link.read_until(b"\r\n")
    with pytest.raises(OSError):
        link.write(b"B\r\n")
    fresh = server.open_link(server.url, FAST)
    fresh.write(b"C\r\n")
    assert fresh.read_until(b"\r\n") == b"OK C\r\n"
    assert server.log == ["A", "C"] and server.opened == 2
    server.stop()
    with pytest.raises(OSError, match="stopped"):
        server.open_link(server.url, FAST)


def test_a_late_loopback_answer_arrives_when_its_time_has_come() -> None:
    clock = ManualClock()
    server = LoopbackTwin(EchoDevice(), FaultPlan(late_s=0.5, script=["late_answer"]), clock=clock)
    link = server.open_link(server.url, FAST)
    link.write(b"A\r\n")
    assert link.read_until(b"\r\n") == b"" and clock.now() == pytest.approx(0.05)  # one poll period waited
    clock.advance(0.44)
    assert link.in_waiting == 0
    clock.advance(0.02)
    assert link.in_waiting == len(b"OK A\r\n")
    assert link.read_until(b"\r\n") == b"OK A\r\n"


def test_a_query_gets_its_answer_and_both_lines_are_in_the_transcript(line) -> None:
    _server, transport = line
    assert transport.query("A", idempotent=True) == "OK A"
    assert [(e.direction, e.data) for e in transport.transcript.entries if e.direction in ("tx", "rx")] == [
        ("tx", "A"),
        ("rx", "OK A"),
    ]


@pytest.mark.parametrize("fault", ["no_answer", "late_answer", "garbled", "disconnect"])
def test_an_idempotent_query_is_retried_through_each_fault(line, fault: str) -> None:
    server, transport = line
    server.faults.script[:] = [fault]
    assert transport.query("B", idempotent=True) == "OK B"
    assert server.log.count("B") == 2
    assert any(e.data.startswith("retry 1/2 of 'B'") for e in transport.transcript.entries)


@pytest.mark.parametrize("fault", ["no_answer", "late_answer"])
def test_a_command_that_moves_matter_is_sent_once_and_its_timeout_raised(line, fault: str) -> None:
    server, transport = line
    server.faults.script[:] = [fault]
    with pytest.raises(InstrumentTimeout, match=r"no answer within 0\.3 s"):
        transport.query("RUN", idempotent=False)
    assert server.log.count("RUN") == 1
    # The late answer to RUN arrives after the timeout: it is thrown away, never taken as the next answer.
    assert transport.query("C", idempotent=True) == "OK C"
    if fault == "late_answer":
        assert any(e.direction == "discarded" and "OK RUN" in e.data for e in transport.transcript.entries)


def test_a_dropped_line_is_reported_and_the_next_command_reconnects(line) -> None:
    server, transport = line
    server.faults.script[:] = ["disconnect"]
    with pytest.raises(Disconnected):
        transport.query("RUN", idempotent=False)
    assert server.log.count("RUN") == 1
    assert transport.query("D", idempotent=True) == "OK D"


def test_retries_are_bounded(line) -> None:
    server, transport = line
    server.faults.script[:] = ["no_answer"] * 5
    with pytest.raises(InstrumentTimeout):
        transport.query("E", idempotent=True)
    assert server.log.count("E") == 3  # one try and two retries


def test_a_garbled_answer_is_a_protocol_error_when_not_retried(line) -> None:
    server, transport = line
    server.faults.script[:] = ["garbled"]
    with pytest.raises(ProtocolError, match="undecodable"):
        transport.query("F", idempotent=False)


def test_unanswered_settings_are_sent_and_the_line_stays_in_step(line) -> None:
    _server, transport = line
    transport.send("SET 5")
    assert transport.query("G", idempotent=True) == "OK G"


def test_opening_a_missing_port_is_a_disconnect() -> None:
    with pytest.raises(Disconnected, match="cannot open /dev/peirce-missing"):
        SerialTransport("/dev/peirce-missing", FAST).open()


def test_terminators_from_a_station_file_are_unescaped() -> None:
    settings = FAST.with_overrides({"read_terminator": "\\x03", "baudrate": 19200})
    assert settings.read_terminator == b"\x03" and settings.baudrate == 19200
    with pytest.raises(KeyError):
        FAST.with_overrides({"baud": 1})


class StreamDevice(TwinProtocol):
    """Replies with whatever bytes the test hands it, to feed the transport arbitrary streams."""

    payload = b""

    def handle(self, request: str) -> list[bytes]:  # type: ignore[override]
        return [self.payload]

    def error_reply(self, request: str) -> list[str]:
        return []


@pytest.fixture(scope="module")
def stream() -> Iterator[tuple[StreamDevice, SerialTransport]]:
    device = StreamDevice()
    device.reply_terminator = b""
    server = TwinServer(device)
    transport = SerialTransport(server.start_tcp(), SerialSettings(timeout_s=0.05, grace_s=0.0, retries=0, max_line=64))
    transport.open()
    yield device, transport
    transport.close()
    server.stop()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=100))
def test_any_byte_stream_gives_a_line_or_a_typed_error(stream, data: bytes) -> None:
    device, transport = stream
    device.payload = data
    try:
        answer = transport.query("Q", idempotent=False)
    except (InstrumentTimeout, ProtocolError):
        return
    assert isinstance(answer, str)
    assert answer.encode("ascii") + b"\r\n" in data
