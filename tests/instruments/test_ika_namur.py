"""The IKA NAMUR hotplate driver against its twin: the conformance kit, the parsers, read-back of settings that the
protocol does not answer, device error codes, and the physics the readings come from (via the Bench).

The conformance kit runs once over a real pty (and once in-process); one test runs over TCP. Every other test
reaches the twin in-process (`LoopbackTwin`) on a manual clock shared by the driver and the bench, so heating
ramps, settle times and timeouts are exact and cost no wall time."""

from __future__ import annotations

import os
import termios
import tty
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from instruments.clock import ManualClock
from instruments.conformance import FAST_SETTINGS, DriverConformance, ParserConformance, link_options
from instruments.drivers.ika_namur import (
    ERROR_CODES,
    IkaNamurHotplate,
    check_device_error,
    parse_name_response,
    parse_value_response,
)
from instruments.errors import DeviceError, InstrumentTimeout, ProtocolError
from simulators.twins.bench import Bench
from simulators.twins.ika_namur import IkaNamurTwin
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.server import TwinEndpoint, TwinServer


def _pty_takes_7e1() -> bool:
    """Whether this kernel's ptys keep 7 data bits and even parity (some store CS8 and no parity whatever is asked,
    then refuse the next tcsetattr that asks again with EINVAL; a real port takes the setting)."""
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        port = serial.Serial(os.ttyname(slave), 9600, bytesize=7, parity="E")
        try:
            port.timeout = 0.1  # the transport sets a timeout per read: each one re-applies the line settings
        finally:
            port.close()
        return True
    except (serial.SerialException, OSError, ValueError, termios.error):
        return False
    finally:
        os.close(master)
        os.close(slave)


# Over a pty the line settings mean nothing (no UART); where the kernel refuses them, the pty tests open the line as
# 8N1. The TCP test (socket://) keeps the driver's own 7E1 settings.
PTY_SETTINGS: dict[str, Any] = FAST_SETTINGS if _pty_takes_7e1() else {**FAST_SETTINGS, "bytesize": 8, "parity": "N"}


def serve(bench: Bench, *, tcp: bool = False, **options: Any) -> TwinServer:
    server = TwinServer(IkaNamurTwin(bench, **options), name="hotplate")
    if tcp:
        server.start_tcp()
    else:
        server.start_pty()
    return server


def loopback(bench: Bench, **options: Any) -> LoopbackTwin:
    """The twin in-process; `bench` must run on a manual wall clock, which the driver then shares."""
    assert isinstance(bench.wall_clock, ManualClock)
    return LoopbackTwin(IkaNamurTwin(bench, **options), name="hotplate", clock=bench.wall_clock)


def connected(twin: TwinEndpoint, **options: Any) -> IkaNamurHotplate:
    driver = IkaNamurHotplate(twin.url, instrument="hotplate", settings=FAST_SETTINGS, **link_options(twin), **options)
    driver.connect()
    return driver


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bench(clock: ManualClock) -> Bench:
    return Bench(time_scale=600, seed=7, wall_clock=clock)


@pytest.fixture
def twin(bench: Bench) -> Iterator[LoopbackTwin]:
    with loopback(bench) as server:
        yield server


@pytest.fixture
def driver(twin: LoopbackTwin) -> Iterator[IkaNamurHotplate]:
    driver = connected(twin)
    yield driver
    driver.close()


def protocol(server: TwinEndpoint) -> IkaNamurTwin:
    assert isinstance(server.protocol, IkaNamurTwin)
    return server.protocol


# --- the conformance kit ----------------------------------------------------------------------------------------------


class TestIkaNamurConformance(DriverConformance):
    driver_class = IkaNamurHotplate
    examples: ClassVar[list[tuple[str, dict[str, Any]]]] = [
        ("set_temperature", {"temperature_c": 40.0}),
        ("wait_for_temperature", {"temperature_c": 40.0, "tolerance_c": 2.0, "timeout_s": 30.0}),
        ("read_temperature", {}),
        ("heat_off", {}),
        ("set_speed", {"speed_rpm": 300.0}),
        ("stir_off", {}),
    ]
    query_action = ("read_temperature", {})
    moving_action = None
    never_resent = ()
    settings = PTY_SETTINGS

    @pytest.fixture
    def twin(self) -> Iterator[TwinServer]:
        with serve(Bench(time_scale=600, seed=1)) as server:
            yield server


class TestIkaNamurConformanceInProcess(TestIkaNamurConformance):
    """The same kit on the loopback link: it must behave as the pty does, fault for fault."""

    settings = FAST_SETTINGS

    @pytest.fixture
    def twin(self) -> Iterator[LoopbackTwin]:
        with loopback(Bench(time_scale=600, seed=1, wall_clock=ManualClock())) as server:
            yield server


def test_works_over_tcp_as_through_a_serial_device_server() -> None:
    bench = Bench(time_scale=600, seed=2)
    with serve(bench, tcp=True) as server:
        assert server.url.startswith("socket://")
        driver = IkaNamurHotplate(server.url, instrument="hotplate", settings=FAST_SETTINGS)
        assert driver.connect() == {"model": "C-MAG HS7", "protocol": "NAMUR"}
        try:
            driver.execute("set_temperature", {"temperature_c": 55})
            driver.execute("set_speed", {"speed_rpm": 400})
            status = driver.status()
            assert status["temperature_setpoint_c"] == 55.0
            assert status["speed_setpoint_rpm"] == 400.0
            assert server.log[-5:] == ["IN_SP_1", "IN_PV_1", "IN_PV_2", "IN_SP_4", "IN_PV_4"]
        finally:
            driver.close()


# --- parsers: only typed errors, whatever arrives ---------------------------------------------------------------------


class TestIkaNamurParsers(ParserConformance):
    parsers = (
        lambda line: parse_value_response(line, 1),
        lambda line: parse_value_response(line, 4),
        parse_name_response,
        check_device_error,
    )
    valid_answers = ("25.3 1", "80.0 1", "312.5 2", "0.0 4", "1500 4", "-3.2 1", "25.3 1 ", "C-MAG HS7", "Er 2")


@given(st.floats(min_value=-50, max_value=500, allow_nan=False), st.sampled_from([1, 2, 4]))
def test_value_answers_round_trip(value: float, channel: int) -> None:
    assert parse_value_response(f"{value:.1f} {channel}", channel) == pytest.approx(round(value, 1))


def test_value_answers_are_checked_against_their_channel() -> None:
    assert parse_value_response("25.3 1", 1) == 25.3
    assert parse_value_response(" 312.5 02 ", 2) == 312.5  # blank before CR LF, channel written with a zero
    with pytest.raises(ProtocolError, match="channel 4, expected channel 1"):
        parse_value_response("300.0 4", 1)  # a late answer to IN_SP_4 is not the medium's temperature
    for bad in ("", "25.3", "25.3 1 1", "abc 1", "25,3 1", "1e999 1", "nan 1", "9" * 400 + " 1"):
        with pytest.raises(ProtocolError):
            parse_value_response(bad, 1)
    assert parse_name_response("C-MAG HS7 ") == "C-MAG HS7"
    for bad in ("", "   ", "x" * 81, "caf\xe9"):
        with pytest.raises(ProtocolError):
            parse_name_response(bad)


@pytest.mark.parametrize("code", [str(n) for n in sorted(int(c) for c in ERROR_CODES)])
@pytest.mark.parametrize("form", ["Er {}", "ER {}", "Er{:0>2}", "E{}"])
def test_each_display_error_code_is_a_device_error_with_its_code(code: str, form: str) -> None:
    line = form.format(code)
    for parser in (lambda text: parse_value_response(text, 1), parse_name_response, check_device_error):
        with pytest.raises(DeviceError) as caught:
            parser(line)
        assert caught.value.code == code
        assert ERROR_CODES[code] in str(caught.value)
    with pytest.raises(DeviceError, match="Er 77") as caught:
        check_device_error("Er 77")  # not in the table: still the device's code
    assert caught.value.code == "77"


# --- the driver against the twin: settings the protocol does not answer -----------------------------------------------


def test_error_reply_of_the_twin_is_a_typed_device_error(driver: IkaNamurHotplate, twin: TwinServer) -> None:
    twin.faults.script[:] = ["device_error"]
    with pytest.raises(DeviceError) as caught:
        driver.execute("read_temperature")
    assert caught.value.code == "2" and caught.value.instrument == "hotplate"
    assert protocol(twin).error_reply("STOP_1") == []  # never answered, so no error answer either


def test_setpoints_are_sent_read_back_and_the_heater_and_motor_started(
    driver: IkaNamurHotplate, twin: TwinServer
) -> None:
    start = len(twin.log)
    driver.execute("set_temperature", {"temperature_c": 80})
    driver.execute("set_speed", {"speed_rpm": 450.4})
    assert twin.log[start:] == [
        "OUT_SP_1 80.0",
        "IN_SP_1",
        "START_1",
        "START_1",
        "IN_SP_1",
        "IN_SP_1",
        "OUT_SP_4 450",
        "IN_SP_4",
        "START_4",
        "START_4",
        "IN_SP_1",
        "IN_SP_4",
    ]  # fmt: skip  (START twice and the line confirmed: NAMUR cannot read whether heater or motor is on)
    device = protocol(twin)
    assert (device.temperature_setpoint_c, device.heating) == (80.0, True)
    assert (device.speed_setpoint_rpm, device.stirring) == (450.0, True)
    driver.execute("heat_off")
    driver.execute("stir_off")
    assert (device.heating, device.stirring) == (False, False)
    assert device.temperature_setpoint_c == 80.0  # STOP keeps the setpoint


def test_a_lost_setpoint_is_noticed_and_sent_once_more(driver: IkaNamurHotplate, twin: TwinServer) -> None:
    twin.faults.script[:] = ["no_answer"]  # OUT_SP_1 is lost on the line
    driver.execute("set_temperature", {"temperature_c": 65})
    assert protocol(twin).temperature_setpoint_c == 65.0
    assert [r for r in twin.log if r.startswith("OUT_SP_1")] == ["OUT_SP_1 65.0", "OUT_SP_1 65.0"]
    notes = [e.data for e in driver.transport.transcript.entries if e.direction == "note"]
    assert any("not taken" in n for n in notes)


def test_a_setpoint_lost_twice_raises_and_the_heater_is_not_started(driver: IkaNamurHotplate, twin: TwinServer) -> None:
    twin.faults.script[:] = ["no_answer", None, "no_answer"]  # both OUT_SP_1 lost, the read-backs answered
    with pytest.raises(DeviceError, match="not taken") as caught:
        driver.execute("set_temperature", {"temperature_c": 65})
    assert caught.value.code == "not-taken"
    assert "START_1" not in twin.log
    assert protocol(twin).heating is False


def test_a_setpoint_the_device_refuses_raises(bench: Bench) -> None:
    """A model whose range ends below the driver's (max 200 °C, 1000 rpm) ignores the setting; the read-back says so."""
    with loopback(bench, max_c=200, max_rpm=1000) as server:
        driver = connected(server)
        try:
            with pytest.raises(DeviceError, match=r"setpoint 250\.0 was not taken: IN_SP_1 reads 0"):
                driver.execute("set_temperature", {"temperature_c": 250})
            with pytest.raises(DeviceError, match="not taken"):
                driver.execute("set_speed", {"speed_rpm": 1200})
            assert protocol(server).heating is False and protocol(server).stirring is False
        finally:
            driver.close()


def test_a_setpoint_reset_when_the_heater_starts_is_set_again(driver: IkaNamurHotplate, twin: TwinServer) -> None:
    device = protocol(twin)
    original = device._switch

    def start_resets_the_setpoint(command: str) -> None:  # the firmware quirk users report
        original(command)
        if command == "START_1":
            device.temperature_setpoint_c = 0.0

    device._switch = start_resets_the_setpoint  # type: ignore[method-assign]
    driver.execute("set_temperature", {"temperature_c": 70})
    assert device.temperature_setpoint_c == 70.0 and device.heating


def test_a_stop_lost_on_the_line_is_covered_by_its_second_copy(driver: IkaNamurHotplate, twin: TwinServer) -> None:
    driver.execute("set_temperature", {"temperature_c": 50})
    twin.faults.script[:] = ["no_answer"]
    driver.execute("heat_off")
    assert not protocol(twin).heating


def test_a_stop_sent_into_a_dropped_line_is_sent_again_after_reconnecting(
    driver: IkaNamurHotplate, twin: TwinServer
) -> None:
    driver.execute("set_temperature", {"temperature_c": 50})
    twin.faults.script[:] = ["disconnect"]  # the first STOP_1 closes the line: its copy goes nowhere
    driver.execute("heat_off")
    assert not protocol(twin).heating
    notes = [e.data for e in driver.transport.transcript.entries if e.direction == "note"]
    assert any("sending it again" in n for n in notes)


def test_safe_state_switches_heater_and_motor_off(driver: IkaNamurHotplate, twin: TwinServer) -> None:
    driver.execute("set_temperature", {"temperature_c": 50})
    driver.execute("set_speed", {"speed_rpm": 200})
    start = len(twin.log)
    driver.abort()
    assert twin.log[start:] == ["STOP_1", "STOP_1", "IN_SP_1", "STOP_4", "STOP_4", "IN_SP_1"]
    assert not protocol(twin).heating and not protocol(twin).stirring


def test_twin_ignores_unknown_and_malformed_commands_and_resets(driver: IkaNamurHotplate, twin: TwinServer) -> None:
    device = protocol(twin)
    assert device.handle("IN_PV_1") and device.handle("in_pv_1") == []
    for request in ("FOO", "OUT_SP_1", "OUT_SP_1 abc", "OUT_SP_1 -5", "OUT_SP_4 99999", "START_1 1"):
        assert device.handle(request) == [] and not device.answers(request)
    assert (device.temperature_setpoint_c, device.speed_setpoint_rpm, device.heating) == (0.0, 0.0, False)
    driver.execute("set_temperature", {"temperature_c": 30})
    driver.execute("set_speed", {"speed_rpm": 100})
    assert device.handle("RESET") == []
    assert not device.heating and not device.stirring
    assert device.handle("IN_NAME") == ["C-MAG HS7"]


def test_wait_for_temperature_times_out_with_a_clear_message(driver: IkaNamurHotplate, clock: ManualClock) -> None:
    started = clock.now()
    with pytest.raises(InstrumentTimeout, match=r"did not reach 80 ± 1 °C within 0\.3 s: it reads 2\d(\.\d+)? °C"):
        driver.execute("wait_for_temperature", {"temperature_c": 80, "timeout_s": 0.3})  # heater never switched on
    # It gave up at its deadline, polling every poll_s: not before 0.3 s, and not long after.
    assert 0.3 <= clock.now() - started < 0.3 + 2 * IkaNamurHotplate.poll_s


# --- physics through the bench ----------------------------------------------------------------------------------------


def test_heats_to_80_and_the_reading_says_so(driver: IkaNamurHotplate, bench: Bench) -> None:
    assert driver.execute("read_temperature")["temperature_c"] == pytest.approx(bench.ambient_c, abs=0.5)
    driver.execute("set_temperature", {"temperature_c": 80})
    result = driver.execute("wait_for_temperature", {"temperature_c": 80, "timeout_s": 60})
    assert result["temperature_c"] == pytest.approx(80, abs=1.0)
    assert 0 < result["waited_s"] < 60
    # ramping at 10 °C/min from 22 °C takes about 6 simulated minutes: 0.6 s at 600×
    assert bench.clock.now() > 5.8 * 60
    status = driver.status()
    assert status["plate_temperature_c"] == pytest.approx(80, abs=1.0)
    assert status["temperature_setpoint_c"] == 80.0


def test_the_reading_ramps_at_about_the_configured_rate(clock: ManualClock) -> None:
    bench = Bench(time_scale=60, seed=3, wall_clock=clock)  # one wall second is one simulated minute
    with loopback(bench, ramp_c_per_min=10.0) as server:
        driver = connected(server)
        try:
            driver.execute("set_temperature", {"temperature_c": 200})
            clock.advance(1.0)  # past the medium's lag behind the plate (20 s)
            first, t1 = driver.execute("read_temperature")["temperature_c"], bench.clock.now()
            clock.advance(1.5)
            second, t2 = driver.execute("read_temperature")["temperature_c"], bench.clock.now()
        finally:
            driver.close()
    rate_c_per_min = (second - first) / (t2 - t1) * 60
    assert rate_c_per_min == pytest.approx(10.0, rel=0.2)


def test_a_dosed_vessel_on_the_hotplate_makes_product(
    driver: IkaNamurHotplate, bench: Bench, clock: ManualClock
) -> None:
    vessel = bench.place("hotplate", "vial-1")
    with bench.lock:
        vessel.dose(1.0)
    driver.execute("set_speed", {"speed_rpm": 600})
    driver.execute("set_temperature", {"temperature_c": 80})
    driver.execute("wait_for_temperature", {"temperature_c": 80, "timeout_s": 60})
    clock.advance(0.5)  # five simulated minutes at 80 °C
    bench.remove("hotplate")  # syncs: what happened on the hotplate happened before it left
    assert vessel.p_mmol > 0
    assert vessel.temperature_c == pytest.approx(80, abs=1.5)
    assert driver.execute("read_temperature")["temperature_c"] > 75  # the probe stays in the hot medium


def product_after(temperature_c: float, hold_s: float = 1800.0) -> float:
    """Product in a dosed vial held `hold_s` simulated seconds on a hotplate set to `temperature_c`."""
    clock = ManualClock()  # the same simulated time, exactly, for runs to compare
    bench = Bench(seed=4, wall_clock=clock)
    with loopback(bench) as server:
        driver = connected(server)
        try:
            driver.execute("set_speed", {"speed_rpm": 500})
            driver.execute("set_temperature", {"temperature_c": temperature_c})
            clock.advance(1800.0)  # the plate and the medium reach the setpoint before the vial arrives
            reading = driver.execute("read_temperature")["temperature_c"]
            assert reading == pytest.approx(temperature_c, abs=0.5)
            vessel = bench.place("hotplate", "vial")
            with bench.lock:
                vessel.dose(1.0)
            clock.advance(hold_s)
            bench.remove("hotplate")
            return vessel.p_mmol
        finally:
            driver.close()


def test_more_product_at_90_than_at_60_for_the_same_time() -> None:
    at_60, at_90 = product_after(60.0), product_after(90.0)
    assert 0 < at_60 < at_90
    assert at_90 > 2 * at_60  # Arrhenius: well over twice as fast 30 K hotter
