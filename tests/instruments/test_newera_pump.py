"""The New Era NE-1000 driver against its twin: conformance, the wire format, the pump's physics on the bench,
error codes, and parsers that raise only typed errors whatever the line brings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.clock import ManualClock
from instruments.conformance import FAST_SETTINGS, DriverConformance, ParserConformance, link_options
from instruments.drivers.newera_pump import (
    ALARMS,
    COMMAND_ERRORS,
    NewEraPump,
    format_float,
    format_rate,
    format_volume,
    parse_diameter,
    parse_direction,
    parse_dispensed,
    parse_float,
    parse_rate,
    parse_reply,
    parse_version,
    parse_volume,
)
from instruments.errors import (
    DeviceError,
    InstrumentTimeout,
    InvalidAction,
    LimitViolation,
    ProtocolError,
)
from simulators.twins.bench import Bench, Vessel
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.newera_pump import NewEraPumpTwin, display
from simulators.twins.server import TwinServer

STX = "\x02"


@contextlib.contextmanager
def served(twin: NewEraPumpTwin, *, tcp: bool = False) -> Iterator[TwinServer]:
    """The twin served on a pty (or TCP), stopped when the block ends."""
    with TwinServer(twin, name="pump") as server:
        server.start_tcp() if tcp else server.start_pty()
        yield server


def loopback(twin: NewEraPumpTwin) -> LoopbackTwin:
    """The twin in-process, on its bench's manual wall clock (which the driver then shares)."""
    assert isinstance(twin.bench.wall_clock, ManualClock)
    return LoopbackTwin(twin, name="pump", clock=twin.bench.wall_clock)


def vial_at_pump(bench: Bench) -> Vessel:
    vessel = bench.vessel_at("pump")
    assert vessel is not None, "a vial stands at the pump"
    return vessel


def manual_bench(time_scale: float = 600) -> Bench:
    return Bench(time_scale=time_scale, seed=0, wall_clock=ManualClock())


@pytest.fixture
def bench() -> Bench:
    bench = manual_bench()
    bench.place("pump", "vial")
    return bench


@pytest.fixture
def twin(bench: Bench) -> Iterator[LoopbackTwin]:
    with loopback(NewEraPumpTwin(bench, instrument="pump")) as server:
        yield server


@pytest.fixture
def pump(twin: LoopbackTwin) -> Iterator[NewEraPump]:
    driver = NewEraPump(twin.url, instrument="pump", settings=FAST_SETTINGS, **link_options(twin))
    driver.connect()
    yield driver
    driver.close()


# --- the conformance kit ---------------------------------------------------------------------------------------------


class TestNewEraPumpConformance(DriverConformance):
    driver_class = NewEraPump
    examples: ClassVar[list[tuple[str, dict[str, Any]]]] = [
        ("set_diameter", {"diameter_mm": 14.57}),
        ("read_dispensed", {}),
        ("dispense", {"volume_ml": 0.02, "rate_ml_min": 5.0}),
        ("withdraw", {"volume_ml": 0.01, "rate_ml_min": 5.0}),
        ("stop", {}),
    ]
    query_action = ("read_dispensed", {})
    moving_action = ("dispense", {"volume_ml": 0.01, "rate_ml_min": 8.0})
    never_resent = ("00RUN",)

    @pytest.fixture
    def twin(self) -> Iterator[TwinServer]:
        bench = Bench(time_scale=600, seed=0)
        bench.place("pump", "vial")
        with served(NewEraPumpTwin(bench, instrument="pump")) as server:
            yield server


class TestNewEraPumpConformanceInProcess(TestNewEraPumpConformance):
    """The same kit on the loopback link: it must behave as the pty does, fault for fault."""

    @pytest.fixture
    def twin(self) -> Iterator[LoopbackTwin]:  # type: ignore[override]
        bench = manual_bench()
        bench.place("pump", "vial")
        with loopback(NewEraPumpTwin(bench, instrument="pump")) as server:
            yield server


def test_over_tcp_a_dispense_doses_the_vial() -> None:
    """The same driver through a serial device server (socket://): identify, status, a dispense into the vial."""
    bench = Bench(time_scale=600, seed=0)  # served from another thread: the real clock
    bench.place("pump", "vial")
    with served(NewEraPumpTwin(bench, instrument="pump"), tcp=True) as server:
        assert server.url.startswith("socket://")
        driver = NewEraPump(server.url, instrument="pump", settings=FAST_SETTINGS)
        try:
            assert driver.connect()["model"] == "NE-1000"
            assert driver.status()["state"] == "stopped"
            before = vial_at_pump(bench).volume_ml
            assert driver.execute("dispense", {"volume_ml": 0.5, "rate_ml_min": 10})["dispensed_ml"] == 0.5
            assert vial_at_pump(bench).volume_ml == pytest.approx(before + 0.5)
        finally:
            driver.close()


# --- wire format ------------------------------------------------------------------------------------------------------


def test_wire_commands_and_identity(pump: NewEraPump, twin: LoopbackTwin) -> None:
    assert pump.identity == {
        "vendor": "New Era Pump Systems",
        "model": "NE-1000",
        "firmware": "V3.928",
        "address": "00",
        "version_string": "NE1000V3.928",
    }
    start = len(twin.log)
    assert pump.execute("dispense", {"volume_ml": 1.5, "rate_ml_min": 5}) == {"dispensed_ml": 1.5}
    sent = twin.log[start:]
    assert sent[:6] == ["00DIR INF", "00RAT 5 MM", "00VOL ML", "00VOL 1.5", "00CLD INF", "00RUN"]
    assert set(sent[6:]) == {"00DIS"}
    assert sum(r.startswith("00RUN") for r in sent) == 1


def test_values_are_written_exactly_in_the_best_units(pump: NewEraPump, twin: LoopbackTwin) -> None:
    start = len(twin.log)
    pump.execute("dispense", {"volume_ml": 0.0005, "rate_ml_min": 0.25})
    assert twin.log[start : start + 4] == ["00DIR INF", "00RAT 0.25 MM", "00VOL UL", "00VOL 0.5"]
    assert format_rate(1 / 3) == ("20", "MH")
    assert format_rate(0.0125) == ("12.5", "UM")
    assert format_volume(0.1 + 0.2) == ("0.3", "ML")
    assert format_volume(0.0125) == ("12.5", "UL")
    with pytest.raises(InvalidAction):
        format_volume(1.2345)  # 1.2345 mL is 1234.5 µL: five digits either way


def test_twin_replies_byte_exact() -> None:
    twin = NewEraPumpTwin(manual_bench(time_scale=1))
    assert twin.handle("VER") == [f"{STX}00SNE1000V3.928"]
    assert twin.handle("00DIA") == [f"{STX}00S14.57"]
    assert twin.handle("00 rat 2.5 mh") == [f"{STX}00S"]  # spaces stripped, upper-cased (§10.2.2)
    assert twin.handle("00RAT") == [f"{STX}00S2.500MH"]
    assert twin.handle("00VOL") == [f"{STX}00S0.000ML"]
    assert twin.handle("00DIS") == [f"{STX}00SI0.000W0.000ML"]
    assert twin.handle("00DIR") == [f"{STX}00SINF"]
    assert twin.handle("00") == [f"{STX}00S"]
    assert twin.handle("00DIA 9.0") == [f"{STX}00S"]
    assert twin.handle("00VOL") == [f"{STX}00S0.000UL"]  # at or below 14.00 mm the units are µL
    assert twin.handle("01VER") == []  # another pump's address: silence
    assert twin.answers("00VER") and not twin.answers("07VER")
    assert [display(v) for v in (14.57, 5, 0.01, 1234.5)] == ["14.57", "5.000", "0.010", "1234"]


# --- the pump on the bench --------------------------------------------------------------------------------------------


def test_dispense_doses_the_vessel_at_the_pump(pump: NewEraPump, bench: Bench) -> None:
    vial = bench.vessel_at("pump")
    assert vial is not None
    volume, a_mmol = vial.volume_ml, vial.a_mmol
    assert pump.execute("dispense", {"volume_ml": 1.5, "rate_ml_min": 5.0}) == {"dispensed_ml": 1.5}
    assert vial.volume_ml == pytest.approx(volume + 1.5)
    assert vial.a_mmol == pytest.approx(a_mmol + 0.75)  # 1.5 mL of the 0.5 M reagent in the syringe
    assert pump.execute("read_dispensed") == {"infused_ml": 1.5, "withdrawn_ml": 0.0}
    status = pump.status()
    assert status["state"] == "stopped" and status["infused_ml"] == 1.5 and status["rate_ml_min"] == 5.0


def test_withdraw_draws_the_vessel_contents_back(pump: NewEraPump, bench: Bench) -> None:
    vial = bench.vessel_at("pump")
    assert vial is not None
    pump.execute("dispense", {"volume_ml": 2.0, "rate_ml_min": 10.0})
    b_before = vial.b_mmol
    assert pump.execute("withdraw", {"volume_ml": 1.0, "rate_ml_min": 10.0}) == {"withdrawn_ml": 1.0}
    assert vial.volume_ml == pytest.approx(3.0)
    assert vial.b_mmol == pytest.approx(b_before * 3.0 / 4.0)  # a quarter of the well-mixed contents left
    assert pump.execute("read_dispensed") == {"infused_ml": 2.0, "withdrawn_ml": 1.0}


def test_with_no_vessel_the_liquid_is_lost_but_counted(pump: NewEraPump, bench: Bench) -> None:
    vial = bench.vessel_at("pump")
    bench.remove("pump")
    assert pump.execute("dispense", {"volume_ml": 0.75, "rate_ml_min": 10.0}) == {"dispensed_ml": 0.75}
    assert vial is not None and vial.volume_ml == pytest.approx(bench.chemistry.charge_volume_ml)


def test_run_stop_and_resume_in_simulated_time() -> None:
    clock = ManualClock()
    bench = Bench(time_scale=1, wall_clock=clock)
    twin = NewEraPumpTwin(bench, instrument="pump")
    vial = bench.place("pump", "vial")
    for command in ("00DIR INF", "00RAT 1 MM", "00VOL ML", "00VOL 1"):
        assert twin.handle(command) == [f"{STX}00S"]
    assert twin.handle("00RUN") == [f"{STX}00I"]
    clock.advance(30)
    assert twin.handle("00RUN") == [f"{STX}00I?NA"]  # already pumping: not applicable, not restarted
    assert twin.handle("00DIS") == [f"{STX}00II0.500W0.000ML"]
    assert vial.volume_ml == pytest.approx(2.5)
    assert twin.handle("00VOL 5") == [f"{STX}00I?NA"]
    assert twin.handle("00STP") == [f"{STX}00P"]  # the first STP pauses
    clock.advance(120)
    assert twin.handle("00DIS") == [f"{STX}00PI0.500W0.000ML"]  # no accrual while paused
    assert vial.volume_ml == pytest.approx(2.5)
    assert twin.handle("00RUN") == [f"{STX}00I"]  # resumes to the same target
    clock.advance(10)
    bench.sync()  # a vessel move brings the pump up to date
    assert vial.volume_ml == pytest.approx(2 + 0.5 + 10 / 60)
    clock.advance(600)
    assert twin.handle("00DIS") == [f"{STX}00SI1.000W0.000ML"]  # stopped by itself at the target
    assert vial.volume_ml == pytest.approx(3.0)
    assert twin.handle("00RUN") == [f"{STX}00I"]
    clock.advance(30)
    assert twin.handle("00STP") == [f"{STX}00P"]
    assert twin.handle("00STP") == [f"{STX}00S"]  # the second STP stops the program
    assert twin.handle("00RUN") == [f"{STX}00I"]  # a fresh run: the whole target again
    clock.advance(120)
    assert twin.handle("00DIS") == [f"{STX}00SI2.500W0.000ML"]


def test_rate_change_while_pumping_takes_effect_from_then() -> None:
    clock = ManualClock()
    bench = Bench(time_scale=1, wall_clock=clock)
    twin = NewEraPumpTwin(bench)
    twin.handle("00RAT 1 MM")
    twin.handle("00RUN")  # VOL 0: pumps without end
    clock.advance(60)
    assert twin.handle("00RAT 2 MM") == [f"{STX}00I"]
    assert twin.handle("00RAT 2 MH") == [f"{STX}00I?NA"]  # units cannot change while pumping
    clock.advance(60)
    assert twin.handle("00DIS") == [f"{STX}00II3.000W0.000ML"]
    assert twin.handle("00DIR WDR") == [f"{STX}00W"]  # VOL 0: the direction may change while pumping
    clock.advance(30)
    assert twin.handle("00DIS") == [f"{STX}00WI3.000W1.000ML"]


# --- errors: every code to a typed error -----------------------------------------------------------------------------


@pytest.mark.parametrize("error", sorted(COMMAND_ERRORS))
def test_each_command_error_is_a_device_error_with_its_code(error: str) -> None:
    with pytest.raises(DeviceError) as caught:
        parse_reply(f"{STX}00S?{error}", 0)
    assert caught.value.code == f"?{error}"


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_each_alarm_is_a_device_error_with_its_code(alarm: str) -> None:
    with pytest.raises(DeviceError) as caught:
        parse_reply(f"{STX}00A?{alarm}", 0)
    assert caught.value.code == f"A?{alarm}"


@pytest.mark.parametrize(
    "line",
    ["00S", f"{STX}01S", f"{STX}0S", f"{STX}00Q", f"{STX}00A?Q", f"{STX}00S?XYZ", f"{STX}00S{STX}00S", f"{STX}00S\t"],
)
def test_lines_the_protocol_does_not_allow_are_protocol_errors(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_reply(line, 0)


def test_device_errors_end_to_end(pump: NewEraPump, twin: LoopbackTwin, bench: Bench) -> None:
    vial = bench.vessel_at("pump")
    assert vial is not None
    volume = vial.volume_ml
    start = len(twin.log)
    with pytest.raises(DeviceError) as caught:  # beyond what a 14.57 mm syringe reaches (~10.6 mL/min)
        pump.execute("dispense", {"volume_ml": 1, "rate_ml_min": 50})
    assert caught.value.code == "?OOR" and caught.value.instrument == "pump"
    assert not any(r.startswith("00RUN") for r in twin.log[start:]) and vial.volume_ml == volume
    with pytest.raises(DeviceError) as caught:
        pump._command("XYZ")
    assert caught.value.code == "?"
    twin.protocol.handle("00RUN")  # someone started the pump (VOL 0: without end)
    with pytest.raises(DeviceError) as caught:
        pump.execute("dispense", {"volume_ml": 1, "rate_ml_min": 5})
    assert caught.value.code == "?NA"
    assert pump.execute("stop") == {"state": "stopped"}
    # ?COM: the pump got a corrupted packet and did nothing; an idempotent command is sent again, a RUN never.
    twin.faults.script[:] = ["device_error"]
    assert set(pump.execute("read_dispensed")) == {"infused_ml", "withdrawn_ml"}
    notes = [e.data for e in pump.transport.transcript.entries if e.direction == "note"]
    assert notes[-1] == "retry 1/2 of '00DIS': ?COM"
    twin.faults.script[:] = ["device_error"] * 3
    with pytest.raises(DeviceError) as caught:
        pump.execute("read_dispensed")
    assert caught.value.code == "?COM" and caught.value.command == "00DIS"
    twin.faults.script[:] = [None] * 5 + ["device_error"]
    start = len(twin.log)
    with pytest.raises(DeviceError) as caught:
        pump.execute("dispense", {"volume_ml": 1, "rate_ml_min": 5})
    assert caught.value.code == "?COM" and twin.log[start:][-1] == "00RUN"


def test_a_pending_alarm_refuses_the_next_command(pump: NewEraPump, twin: LoopbackTwin, bench: Bench) -> None:
    assert isinstance(twin.protocol, NewEraPumpTwin)
    twin.protocol.raise_alarm("S")
    volume = vial_at_pump(bench).volume_ml
    with pytest.raises(DeviceError) as caught:
        pump.execute("dispense", {"volume_ml": 1, "rate_ml_min": 5})
    assert caught.value.code == "A?S"
    assert vial_at_pump(bench).volume_ml == volume
    assert pump.execute("read_dispensed") == {"infused_ml": 0.0, "withdrawn_ml": 0.0}  # acknowledged


def test_a_stall_mid_dispense_is_a_device_error(bench: Bench) -> None:
    class StallingTwin(NewEraPumpTwin):
        """The plunger jams after 0.6 mL (an occlusion): the motor stalls and the pump raises A?S."""

        def _pump_for(self, seconds: float) -> None:
            room = 0.6 - self.infused_ml
            if self.rate_ml_min / 60 * seconds < room:
                return super()._pump_for(seconds)
            super()._pump_for(room / (self.rate_ml_min / 60))
            self.state, self.alarm = "S", "S"

    with loopback(StallingTwin(bench, instrument="pump")) as server:
        driver = NewEraPump(server.url, instrument="pump", settings=FAST_SETTINGS, **link_options(server))
        driver.connect()
        try:
            with pytest.raises(DeviceError) as caught:
                driver.execute("dispense", {"volume_ml": 1.5, "rate_ml_min": 5})
            assert caught.value.code == "A?S"
            assert vial_at_pump(bench).volume_ml == pytest.approx(2.6)
            assert driver.execute("read_dispensed")["infused_ml"] == 0.6
        finally:
            driver.close()


def test_a_pump_that_stops_short_is_a_device_error(bench: Bench) -> None:
    class PausedTwin(NewEraPumpTwin):
        """Someone presses the keypad's stop halfway: the program pauses short of its target."""

        def _pump_for(self, seconds: float) -> None:
            room = 0.5 - self.infused_ml
            if self.rate_ml_min / 60 * seconds < room:
                return super()._pump_for(seconds)
            super()._pump_for(room / (self.rate_ml_min / 60))
            self.state = "P"

    with loopback(PausedTwin(bench, instrument="pump")) as server:
        driver = NewEraPump(server.url, instrument="pump", settings=FAST_SETTINGS, **link_options(server))
        driver.connect()
        try:
            with pytest.raises(DeviceError, match=r"paused after 0\.5 mL of the 1 mL") as caught:
                driver.execute("dispense", {"volume_ml": 1, "rate_ml_min": 5})
            assert caught.value.code == "incomplete"
        finally:
            driver.close()


def test_a_pump_that_never_stops_is_stopped_and_the_wait_times_out(bench: Bench) -> None:
    class StuckTwin(NewEraPumpTwin):
        """Reports infusing but never gets anywhere (a slipping drive nut)."""

        def _pump_for(self, seconds: float) -> None:
            pass

    with loopback(StuckTwin(bench, instrument="pump")) as server:
        driver = NewEraPump(server.url, instrument="pump", settings=FAST_SETTINGS, **link_options(server))
        driver.connect()
        try:
            started = server.clock.now()
            with pytest.raises(InstrumentTimeout, match="still infusing"):
                driver.execute("dispense", {"volume_ml": 0.01, "rate_ml_min": 5})
            assert server.log[-2:] == ["00STP", "00STP"]
            assert isinstance(server.protocol, NewEraPumpTwin) and server.protocol.state == "S"
            # 0.01 mL at 5 mL/min should take 0.12 s; the driver waited that, a quarter more, and its 10 s margin.
            waited = server.clock.now() - started
            assert 0.12 * 1.25 + 10.0 <= waited < 0.12 * 1.25 + 10.0 + NewEraPump.poll_interval_s[1] + 1.0
        finally:
            driver.close()


def test_a_power_up_reset_alarm_is_acknowledged_at_connect(bench: Bench) -> None:
    with loopback(NewEraPumpTwin(bench, instrument="pump", alarm="R")) as server:
        driver = NewEraPump(server.url, instrument="pump", settings=FAST_SETTINGS, **link_options(server))
        try:
            assert driver.connect()["firmware"] == "V3.928"
            assert server.log == ["00VER", "00VER"]
        finally:
            driver.close()


def test_addresses(bench: Bench) -> None:
    with loopback(NewEraPumpTwin(bench, instrument="pump", address=7)) as server:
        driver = NewEraPump(server.url, instrument="pump", address=7, settings=FAST_SETTINGS, **link_options(server))
        driver.connect()
        try:
            driver.execute("dispense", {"volume_ml": 0.1, "rate_ml_min": 5})
            assert "07RUN" in server.log and driver.identity["address"] == "07"
        finally:
            driver.close()
        stranger = NewEraPump(
            server.url, instrument="pump", address=0, settings={**FAST_SETTINGS, "retries": 0}, **link_options(server)
        )
        try:
            with pytest.raises(InstrumentTimeout):  # pump 07 does not answer for pump 00
                stranger.connect()
        finally:
            stranger.close()
    with pytest.raises(InvalidAction):
        NewEraPump("loop://", address=100)
    with pytest.raises(ProtocolError, match="address 07, expected 00"):
        parse_reply(f"{STX}07S", 0)


def test_unrepresentable_values_are_refused_before_sending(pump: NewEraPump, twin: LoopbackTwin) -> None:
    start = len(twin.log)
    with pytest.raises(InvalidAction, match="volume_ml"):
        pump.execute("dispense", {"volume_ml": 12.3456, "rate_ml_min": 5})
    with pytest.raises(InvalidAction, match="rate_ml_min"):
        pump.execute("dispense", {"volume_ml": 1, "rate_ml_min": 0.123456})
    with pytest.raises(InvalidAction, match="diameter_mm"):
        pump.execute("set_diameter", {"diameter_mm": 14.575})
    with pytest.raises(LimitViolation, match=r"dispense\.volume_ml"):
        pump.execute("dispense", {"volume_ml": 0, "rate_ml_min": 5})  # VOL 0 would pump without end
    assert twin.log[start:] == []


def test_set_diameter_changes_the_rate_range(pump: NewEraPump) -> None:
    assert pump.execute("set_diameter", {"diameter_mm": 26.59}) == {"diameter_mm": 26.59}
    assert pump.execute("dispense", {"volume_ml": 1, "rate_ml_min": 30})["dispensed_ml"] == 1.0  # 60 mL syringe
    assert pump.execute("set_diameter", {"diameter_mm": 4.699}) == {"diameter_mm": 4.699}
    with pytest.raises(DeviceError) as caught:
        pump.execute("dispense", {"volume_ml": 0.1, "rate_ml_min": 30})  # a 1 mL syringe tops out near 1.1 mL/min
    assert caught.value.code == "?OOR"
    assert pump.execute("dispense", {"volume_ml": 0.1, "rate_ml_min": 1})["dispensed_ml"] == 0.1


# --- number formatting ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(14.57, "14.57"), (5, "5"), (0.001, "0.001"), (9999, "9999"), (0.3, "0.3"), (0.1 + 0.2, "0.3"), (1.125, "1.125")],
)
def test_format_float(value: float, text: str) -> None:
    assert format_float(value) == text


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (10.125, InvalidAction),
        (0.0004, InvalidAction),
        (12345, LimitViolation),
        (-1, LimitViolation),
        (float("nan"), InvalidAction),
    ],
)
def test_format_float_refuses(value: float, error: type[Exception]) -> None:
    with pytest.raises(error):
        format_float(value)


@settings(derandomize=True, database=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_format_float_is_exact_or_refuses(value: float) -> None:
    try:
        text = format_float(value)
    except (InvalidAction, LimitViolation):
        return
    assert abs(float(text) - value) <= 1e-9 * max(1.0, abs(value))
    assert sum(c.isdigit() for c in text) <= 4 and len(text.partition(".")[2]) <= 3


@settings(derandomize=True, database=None)
@given(st.integers(min_value=0, max_value=9999), st.integers(min_value=0, max_value=3))
def test_every_number_the_format_can_carry_is_written(mantissa: int, decimals: int) -> None:
    value = mantissa / 10**decimals
    assert float(format_float(value)) == pytest.approx(value, rel=1e-12, abs=1e-12)


# --- parsers: typed errors only, whatever arrives ---------------------------------------------------------------------

PARSERS: list[tuple[Any, list[str]]] = [
    (lambda text: parse_reply(text, 0), [f"{STX}00S", f"{STX}00II1.500W0.000ML", f"{STX}00A?S", f"{STX}00S?OOR"]),
    (parse_float, ["14.57", ".5"]),
    (parse_diameter, ["14.57"]),
    (parse_rate, ["5.000MM", "2.500UH"]),
    (parse_volume, ["1.500ML", "500.0UL"]),
    (parse_dispensed, ["I1.500W0.000ML", "I500.0W10.00UL"]),
    (parse_direction, ["INF", "WDR"]),
    (parse_version, ["NE1000V3.928", "NE500V3.919"]),
]


class TestNewEraPumpParsers(ParserConformance):
    parsers = tuple(parser for parser, _ in PARSERS)
    valid_answers = tuple(answer for _, answers in PARSERS for answer in answers)
    prefixes = ("", STX)  # past the framing byte, random text reaches parse_reply's inner checks


def test_parsed_values() -> None:
    assert parse_reply(f"{STX}00II1.500W0.000ML", 0).data == "I1.500W0.000ML"
    assert parse_rate("2.500MH") == pytest.approx(2.5 / 60)
    assert parse_volume("500.0UL") == (0.5, "UL")
    dispensed = parse_dispensed("I500.0W10.00UL")
    assert (dispensed.infused_ml, dispensed.withdrawn_ml, dispensed.units) == (0.5, 0.01, "UL")
    assert dispensed.infused_resolution_ml == pytest.approx(1e-4)  # 0.1 µL
    assert dispensed.withdrawn_resolution_ml == pytest.approx(1e-5)  # 0.01 µL
    assert parse_version("NE1000X2V3.928")["model"] == "NE-1000X2"
