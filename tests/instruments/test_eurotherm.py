"""The Eurotherm furnace controller over Modbus RTU against its twin: the conformance kit over a pty (real bytes,
binary frames without terminators) and in-process, the framing (CRC, lengths, exceptions), the furnace's safety
limits refused before a byte is sent, and the furnace's physics and the sample it fires (via the Bench)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pytest
import serial

from instruments import modbus
from instruments.clock import ManualClock
from instruments.conformance import FAST_SETTINGS, DriverConformance, ParserConformance, link_options
from instruments.drivers.eurotherm import REGISTERS, EurothermController
from instruments.errors import DeviceError, InstrumentTimeout, LimitViolation, ProtocolError
from instruments.limits import SafetyLimits
from instruments.transport import frame_gap_s, hex_bytes
from simulators.twins.bench import Bench
from simulators.twins.eurotherm import EurothermFurnaceTwin, profile_summary
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.server import TwinEndpoint, TwinServer


def no_firing(*args: Any) -> dict[str, float]:
    return {}


def serve(bench: Bench, *, tcp: bool = False, **options: Any) -> TwinServer:
    server = TwinServer(EurothermFurnaceTwin(bench, fire=no_firing, **options), name="furnace")
    if tcp:
        server.start_tcp()
    else:
        server.start_pty()
    return server


def loopback(bench: Bench, **options: Any) -> LoopbackTwin:
    assert isinstance(bench.wall_clock, ManualClock)
    options.setdefault("fire", no_firing)
    return LoopbackTwin(EurothermFurnaceTwin(bench, **options), name="furnace", clock=bench.wall_clock)


def connected(twin: TwinEndpoint, **options: Any) -> EurothermController:
    driver = EurothermController(
        twin.url, instrument="furnace", settings=FAST_SETTINGS, **link_options(twin), **options
    )
    driver.connect()
    return driver


def furnace(server: TwinEndpoint) -> EurothermFurnaceTwin:
    assert isinstance(server.protocol, EurothermFurnaceTwin)
    return server.protocol


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
def driver(twin: LoopbackTwin) -> Iterator[EurothermController]:
    driver = connected(twin)
    yield driver
    driver.close()


# --- the conformance kit ----------------------------------------------------------------------------------------------


class TestEurothermConformance(DriverConformance):
    driver_class = EurothermController
    examples: ClassVar[list[tuple[str, dict[str, Any]]]] = [
        ("set_ramp_rate", {"rate_c_per_min": 20.0}),
        ("set_temperature", {"temperature_c": 100.0}),
        ("wait_for_temperature", {"temperature_c": 100.0, "tolerance_c": 5.0, "timeout_s": 30.0}),
        ("read_temperature", {}),
        ("standby", {}),
    ]
    query_action = ("read_temperature", {})
    moving_action = None
    never_resent = ()

    @pytest.fixture
    def twin(self) -> Iterator[TwinServer]:
        with serve(Bench(time_scale=600, seed=1)) as server:
            yield server


class TestEurothermConformanceInProcess(TestEurothermConformance):
    @pytest.fixture
    def twin(self) -> Iterator[LoopbackTwin]:
        with loopback(Bench(time_scale=600, seed=1, wall_clock=ManualClock())) as server:
            yield server


class TestModbusReplyParsers(ParserConformance):
    """Whatever bytes arrive, the reply parsers raise only typed errors (text here as its latin-1 bytes)."""

    parsers = (
        lambda line: modbus.parse_read_reply(line.encode("latin-1", "replace"), 1, 1),
        lambda line: modbus.parse_read_reply(line.encode("latin-1", "replace"), 1, 5),
        lambda line: modbus.parse_write_reply(line.encode("latin-1", "replace"), 1, 2, 1000),
        lambda line: modbus.parse_write_multiple_reply(line.encode("latin-1", "replace"), 1, 2, 2),
        lambda line: modbus.reply_length(line.encode("latin-1", "replace")),
        lambda line: modbus.parse_request(line.encode("latin-1", "replace")),
    )
    valid_answers = (
        modbus.read_reply(1, [253]).decode("latin-1"),
        modbus.echo_reply(1, 6, 2, 1000).decode("latin-1"),
        modbus.exception_reply(1, 6, 3).decode("latin-1"),
        modbus.echo_reply(1, 16, 2, 2).decode("latin-1"),
    )


def test_works_over_tcp_as_through_a_serial_device_server() -> None:
    with serve(Bench(time_scale=600, seed=2), tcp=True) as server:
        driver = EurothermController(server.url, instrument="furnace", settings=FAST_SETTINGS)
        try:
            assert driver.connect()["model"] == "Eurotherm 3216"
            driver.execute("set_ramp_rate", {"rate_c_per_min": 5})
            driver.execute("set_temperature", {"temperature_c": 850})
            status = driver.status()
            assert (status["target_setpoint_c"], status["ramp_rate_c_per_min"], status["mode"]) == (
                850.0,
                5.0,
                "operating",
            )
        finally:
            driver.close()


# --- framing ----------------------------------------------------------------------------------------------------------


def test_crc_and_frames_match_the_specification() -> None:
    # The serial line guide's own example frame (read 1 register at 0 from slave 1) ends 84 0A.
    assert modbus.read_registers_request(1, 0, 1) == bytes.fromhex("010300000001840A")
    assert modbus.crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS check value
    assert modbus.write_register_request(1, 2, 8500)[:6] == bytes.fromhex("0106 0002 2134")
    assert modbus.reply_length(bytes.fromhex("0103")) is None
    assert modbus.reply_length(bytes.fromhex("01030A")) == 15
    assert modbus.reply_length(bytes.fromhex("0106")) == modbus.reply_length(bytes.fromhex("0110")) == 8
    assert modbus.reply_length(bytes.fromhex("0186")) == 5
    with pytest.raises(ProtocolError, match="function code 0x45"):
        modbus.reply_length(bytes.fromhex("0145"))
    assert frame_gap_s(EurothermController.serial) == pytest.approx(3.5 * 10 / 9600)


def test_a_bad_crc_is_named_as_such() -> None:
    frame = bytearray(modbus.read_reply(1, [253]))
    frame[3] ^= 0x01
    with pytest.raises(ProtocolError, match="bad CRC"):
        modbus.parse_read_reply(bytes(frame), 1, 1)


def test_exceptions_are_one_line_errors_naming_the_register(driver: EurothermController, twin: LoopbackTwin) -> None:
    with pytest.raises(DeviceError) as caught:
        driver.write_register(REGISTERS["PV.IN"], 100)  # read-only
    assert caught.value.code == "03"
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("furnace: write PV.IN (register 1) = 100: Modbus exception 03, illegal data value")
    with pytest.raises(DeviceError, match=r"read register 7: Modbus exception 02, illegal data address"):
        driver.read_registers(7)


def test_a_target_above_the_controllers_own_limit_is_refused_by_it(bench: Bench) -> None:
    """SP.HI of the controller (1000 here) is below the driver's range: the controller's exception names TG.SP."""
    with loopback(bench, setpoint_high_c=1000.0) as server:
        driver = connected(server)
        try:
            assert driver.identity["setpoint_range"] == "0-1000 degC"
            with pytest.raises(DeviceError, match=r"write TG\.SP \(register 2\) = 1100 degC: Modbus exception 03"):
                driver.execute("set_temperature", {"temperature_c": 1100})
            assert furnace(server).target_c == pytest.approx(bench.ambient_c)
        finally:
            driver.close()


def test_garbled_replies_are_asked_again_and_noted(driver: EurothermController, twin: LoopbackTwin) -> None:
    twin.faults.script[:] = ["garbled", "garbled"]
    assert driver.execute("read_temperature")["temperature_c"] == pytest.approx(22, abs=1)
    notes = [e.data for e in driver.transport.transcript.entries if e.direction == "note"]
    assert notes[-2:] == [
        "retry 1/2 of read PV.IN (register 1) and 4 after it: protocol",
        "retry 2/2 of read PV.IN (register 1) and 4 after it: protocol",
    ]
    tx = [e.data for e in driver.transport.transcript.entries if e.direction == "tx"]
    assert tx[-1] == "01 03 00 01 00 05 D4 09"  # the transcript shows frames in hex


def test_the_twin_ignores_other_slaves_and_broken_frames(twin: LoopbackTwin) -> None:
    device = furnace(twin)
    other = modbus.read_registers_request(2, 1, 1)
    assert device.handle(other.hex(" ").upper()) == []
    broken = bytearray(modbus.read_registers_request(1, 1, 1))
    broken[-1] ^= 0xFF
    assert device.handle(bytes(broken).hex(" ")) == []
    assert device.handle(bytes.fromhex("0145").hex()) == []  # too short to be a frame
    unknown = modbus.with_crc(bytes.fromhex("0145"))
    assert device.handle(unknown.hex()) == [modbus.exception_reply(1, 0x45, 0x01)]


def test_write_multiple_registers(driver: EurothermController, twin: LoopbackTwin) -> None:
    driver.write_registers(REGISTERS["TG.SP"], [5000])
    assert furnace(twin).target_c == 500.0
    with pytest.raises(DeviceError, match="Modbus exception 03"):
        driver.write_registers(REGISTERS["PV.IN"], [1, 2])  # PV.IN is read-only


# --- safety limits ----------------------------------------------------------------------------------------------------


def test_furnace_limits_refuse_before_any_byte_is_sent(twin: LoopbackTwin) -> None:
    limits = SafetyLimits.from_mapping({"temperature_c": {"max": 1100}, "rate_c_per_min": {"max": 10}})
    driver = connected(twin, limits=limits)
    try:
        sent = len(twin.log)
        with pytest.raises(LimitViolation) as caught:
            driver.execute("set_temperature", {"temperature_c": 1150})
        assert str(caught.value) == (
            "furnace: set_temperature asks temperature_c = 1150, above the limit "
            "furnace.limits.temperature_c.max = 1100"
        )
        with pytest.raises(LimitViolation, match=r"furnace\.limits\.rate_c_per_min\.max = 10"):
            driver.execute("set_ramp_rate", {"rate_c_per_min": 15})
        assert len(twin.log) == sent, "nothing reached the controller"
        driver.execute("set_ramp_rate", {"rate_c_per_min": 10})
        driver.execute("set_temperature", {"temperature_c": 1100})
        assert furnace(twin).target_c == 1100.0
    finally:
        driver.close()


# --- physics through the bench ----------------------------------------------------------------------------------------


def test_the_working_setpoint_ramps_at_the_rate_limit(clock: ManualClock) -> None:
    bench = Bench(time_scale=60, seed=3, wall_clock=clock)  # a wall second is a simulated minute
    with loopback(bench) as server:
        driver = connected(server)
        try:
            driver.execute("set_ramp_rate", {"rate_c_per_min": 5})
            driver.execute("set_temperature", {"temperature_c": 800})
            clock.advance(60)  # an hour
            reading = driver.execute("read_temperature")
            assert reading["working_setpoint_c"] == pytest.approx(22 + 5 * 60, abs=1)
            assert reading["temperature_c"] == pytest.approx(reading["working_setpoint_c"] - 5, abs=3)  # tracks
            assert 0 < reading["output_percent"] < 100
            clock.advance(120)
            assert driver.execute("read_temperature")["temperature_c"] == pytest.approx(800, abs=1)
            driver.execute("standby")
            clock.advance(60)  # an hour of free cooling: tau 3 h
            cooled = driver.execute("read_temperature")
            assert cooled["output_percent"] == 0
            assert cooled["temperature_c"] == pytest.approx(22 + 778 * 2.718281828 ** (-1 / 3), abs=5)
        finally:
            driver.close()


def test_heating_is_capped_by_the_elements(clock: ManualClock) -> None:
    """No rate limit: the setpoint steps, and the furnace heats at most at full power (30 C/min here)."""
    bench = Bench(time_scale=60, seed=3, wall_clock=clock)
    with loopback(bench) as server:
        driver = connected(server)
        try:
            driver.execute("set_ramp_rate", {"rate_c_per_min": 0})
            driver.execute("set_temperature", {"temperature_c": 1000})
            clock.advance(10)
            reading = driver.execute("read_temperature")
            assert reading["working_setpoint_c"] == 1000 and reading["output_percent"] == 100
            assert 22 + 10 * 25 < reading["temperature_c"] < 22 + 10 * 30
        finally:
            driver.close()


def test_wait_for_temperature_times_out_in_one_line(driver: EurothermController, clock: ManualClock) -> None:
    with pytest.raises(InstrumentTimeout) as caught:
        driver.execute("wait_for_temperature", {"temperature_c": 500, "timeout_s": 0.5})  # in standby
    assert "did not reach 500 ± 5 °C within 0.5 s" in str(caught.value) and "\n" not in str(caught.value)


def test_the_sample_in_the_furnace_is_fired_with_the_profile_it_lived(clock: ManualClock) -> None:
    calls: list[tuple[str, dict[str, float], list[tuple[float, float]], float]] = []

    def fire(key: str, powders: Mapping[str, float], steps: Sequence[tuple[float, float]], mixing: float) -> dict:
        calls.append((key, dict(powders), list(steps), mixing))
        return {"product": 1.0}

    bench = Bench(time_scale=3600, seed=5, wall_clock=clock)
    with loopback(bench, fire=fire) as server:
        driver = connected(server)
        try:
            vessel = bench.place("furnace", "crucible-1")
            vessel.powders_g = {"A": 1.0, "B": 2.0}
            vessel.homogeneity = 0.8
            driver.execute("set_ramp_rate", {"rate_c_per_min": 5})
            driver.execute("set_temperature", {"temperature_c": 900})
            driver.execute("wait_for_temperature", {"temperature_c": 900, "tolerance_c": 2, "timeout_s": 60})
            clock.advance(2.0)  # two hours' dwell
            driver.execute("standby")
            clock.advance(3.0)
            bench.remove("furnace")
        finally:
            driver.close()
    assert {key for key, *_ in calls} == {"crucible-1"}
    assert all(powders == {"A": 1.0, "B": 2.0} and mixing == 0.8 for _, powders, _, mixing in calls)
    steps = [step for *_, lived, _ in calls for step in lived]
    # Every stretch above 300 C the sample lived, each once and in order: what the crucible saw, lag included.
    hot = [(t, dt / 3600) for t, dt in vessel.heated if t >= 300]
    assert [x for step in steps for x in step] == pytest.approx([x for step in hot for x in step])
    assert len(steps) > 100 and vessel.phases == {"product": 1.0}
    peak, hold_h, ramp = profile_summary(vessel.heated)
    assert peak == pytest.approx(900, abs=2)
    assert 2.0 < hold_h < 2.6  # the dwell, and the approach within 15 C of the peak
    assert ramp == pytest.approx(5, rel=0.1)
    assert vessel.temperature_c < 900 - 200  # it cooled in the furnace before it left


def test_the_solid_state_simulator_fires_the_furnaces_sample(clock: ManualClock) -> None:
    """The default firing: the solid-state network on the sample's own profile; hotter and longer makes more YBCO."""

    def fired(temperature_c: float, dwell_h: float) -> dict[str, float]:
        bench = Bench(time_scale=3600, seed=5, wall_clock=ManualClock())
        with LoopbackTwin(EurothermFurnaceTwin(bench), name="furnace", clock=bench.wall_clock) as server:
            driver = connected(server)
            vessel = bench.place("furnace", "crucible")
            vessel.powders_g = {"Y2O3": 0.5645, "BaO2": 3.3868, "CuO": 2.3864}  # 1 mmol of YBa2Cu3O6.5
            vessel.homogeneity = 1.0
            driver.execute("set_ramp_rate", {"rate_c_per_min": 10})
            driver.execute("set_temperature", {"temperature_c": temperature_c})
            driver.execute("wait_for_temperature", {"temperature_c": temperature_c, "timeout_s": 60})
            bench.wall_clock.sleep(dwell_h)  # type: ignore[union-attr]
            driver.execute("standby")
            bench.remove("furnace")
            driver.close()
        assert sum(vessel.phases.values()) == pytest.approx(1.0)
        return vessel.phases

    cool, hot = fired(700, 1.0), fired(900, 6.0)
    assert cool["YBa2Cu3O6.5"] < hot["YBa2Cu3O6.5"]
    assert hot["YBa2Cu3O6.5"] > 0.25


def test_profile_summary() -> None:
    assert profile_summary([]) == (0.0, 0.0, 0.0)
    heated = [(100.0, 60.0)] + [(200.0 + 10 * i, 60.0) for i in range(70)] + [(900.0, 3600.0)]
    peak, hold_h, ramp = profile_summary(heated)
    assert peak == 900 and hold_h == pytest.approx(1 + 1 / 60) and ramp == pytest.approx(10, rel=0.02)


def test_a_frame_cut_off_by_silence_is_dropped_by_the_twin_over_a_pty() -> None:
    """RTU frames end with silence: half a request, then a pause, then a whole one; only the whole one is answered."""
    with serve(Bench(time_scale=1, seed=6)) as server:
        port = serial.serial_for_url(server.url, baudrate=9600, timeout=0.5)
        try:
            request = modbus.read_registers_request(1, REGISTERS["ID"], 1)
            port.write(request[:5])
            time.sleep(0.2)  # far more than 3.5 character times: the twin drops the fragment
            port.write(request)
            reply = port.read(7)
            assert modbus.parse_read_reply(reply, 1, 1) == (0x3216,)
            assert port.read(1) == b""  # nothing more: the fragment was never answered
            assert server.log == [hex_bytes(request)] == ["01 03 00 7A 00 01 A5 D3"]
        finally:
            port.close()


def test_a_reply_cut_short_is_an_incomplete_frame_and_asked_again(
    driver: EurothermController, twin: LoopbackTwin
) -> None:
    device = furnace(twin)
    original = device.handle
    cut = [True]

    def cut_once(request: str) -> list[bytes]:
        replies = original(request)
        if cut[0] and replies:
            cut[0] = False
            return [replies[0][:-3]]  # the last three bytes lost on the line
        return replies

    device.handle = cut_once  # type: ignore[method-assign]
    assert driver.execute("read_temperature")["temperature_c"] == pytest.approx(22, abs=1)
    entries = driver.transport.transcript.entries
    assert any(e.direction == "discarded" for e in entries)
    notes = [e.data for e in entries if e.direction == "note"]
    assert notes[-1] == "retry 1/2 of read PV.IN (register 1) and 4 after it: timeout"
