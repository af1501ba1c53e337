"""The Keithley 2000 SCPI driver against its twin: the conformance kit (pty and TCP), the photometer physics through
the bench, the SCPI error queue mapped to DeviceError codes, the twin's SCPI parser, and the response parsers under
random and truncated input."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from instruments.clock import ManualClock
from instruments.conformance import DriverConformance, ParserConformance, link_options
from instruments.drivers.keithley2000 import (
    OVERFLOW_CODE,
    Keithley2000,
    parse_boolean,
    parse_elements,
    parse_error_entry,
    parse_identity,
    parse_number,
    parse_opc,
    parse_quoted,
    parse_reading,
)
from instruments.errors import DeviceError, InstrumentTimeout, ProtocolError
from simulators.twins.bench import Bench, Vessel
from simulators.twins.keithley2000 import OVERFLOW, Keithley2000Twin
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.server import TwinEndpoint, TwinServer

BLANK_V, DARK_V = 5.0, 0.0005


class TestKeithley2000Conformance(DriverConformance):
    driver_class = Keithley2000
    examples = [  # noqa: RUF012 - the kit's declared ClassVar
        ("configure_dc_voltage", {"range_v": 10, "nplc": 1}),
        ("measure_voltage", {"samples": 3}),
        ("configure_resistance_4w", {"range_ohm": 1000, "nplc": 1}),
        ("measure_resistance_4w", {"samples": 3}),
        ("read_errors", {}),
        ("reset", {}),
    ]
    query_action = ("measure_voltage", {"samples": 1})
    moving_action = None
    never_resent = ()

    @pytest.fixture
    def twin(self) -> Iterator[TwinServer]:
        with TwinServer(Keithley2000Twin(_film_bench(Bench(time_scale=10, seed=1))), name="photometer") as server:
            server.start_pty()
            yield server


class TestKeithley2000ConformanceInProcess(TestKeithley2000Conformance):
    """The same kit on the loopback link: it must behave as the pty does, fault for fault."""

    @pytest.fixture
    def twin(self) -> Iterator[LoopbackTwin]:
        clock = ManualClock()
        bench = _film_bench(Bench(time_scale=10, seed=1, wall_clock=clock))
        with LoopbackTwin(Keithley2000Twin(bench), clock=clock) as server:
            yield server


def _film_bench(bench: Bench, resistance_ohm: float = 220.0) -> Bench:
    """A bench with a film under the meter's probe: the four-wire examples read it; the vial-free light path still
    reads the blank in DC volts (a film absorbs nothing here)."""
    bench.place("photometer", "film").resistance_ohm = resistance_ohm
    return bench


# --- a meter on a bench -----------------------------------------------------------------------------------------------

Rig = tuple[Bench, Keithley2000Twin, TwinEndpoint, Keithley2000]


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    """Builds bench + twin + connected driver; driver settings via `settings`. The twin is in-process on a manual
    clock (a loopback link) unless `tcp=True` or `pty=True` serves it on a real line, on the real clock."""
    opened: list[tuple[TwinServer | LoopbackTwin, Keithley2000]] = []

    def build(
        *,
        tcp: bool = False,
        pty: bool = False,
        seed: int = 7,
        time_scale: float = 1000,
        settings: dict[str, Any] | None = None,
        connect: bool = True,
        **options: Any,
    ) -> Rig:
        real_line = tcp or pty
        bench = Bench(time_scale=time_scale, seed=seed, wall_clock=None if real_line else ManualClock())
        twin = Keithley2000Twin(bench, **options)
        server: TwinServer | LoopbackTwin
        if real_line:
            server = TwinServer(twin, name="photometer")
            server.start_tcp() if tcp else server.start_pty()
        else:
            server = LoopbackTwin(twin, name="photometer", clock=bench.wall_clock)
        driver = Keithley2000(
            server.url,
            instrument="photometer",
            settings={"timeout_s": 1.0, **(settings or {})},
            **link_options(server),
        )
        opened.append((server, driver))
        if connect:
            driver.connect()
        return bench, twin, server, driver

    yield build
    for server, driver in opened:
        driver.close()
        server.stop()


def _absorbance(volts: float) -> float:
    """Beer-Lambert from the photodiode's voltage: A = log10(blank / (reading - dark))."""
    return math.log10(BLANK_V / (volts - DARK_V))


def _product_absorbance(vessel: Vessel) -> float:
    """What the product in the vial absorbs, from the amount the reaction made (the surrogate's stated constants,
    written out here, not the bench's formula): ε = 20 L/(mol cm) at 450 nm over a 1 cm path; mmol/mL is mol/L."""
    return 20.0 * (vessel.p_mmol / vessel.volume_ml) * 1.0


def test_over_tcp_as_through_a_serial_device_server(rig: Callable[..., Rig]) -> None:
    _, _, server, driver = rig(tcp=True)
    assert server.url.startswith("socket://")
    assert driver.identity == {
        "manufacturer": "KEITHLEY INSTRUMENTS INC.",
        "model": "MODEL 2000",
        "serial": "1234567",
        "firmware": "A20 /A02",
    }
    result = driver.execute("measure_voltage", {"samples": 4})
    assert result["voltage_v"] == pytest.approx(BLANK_V + DARK_V, abs=0.003)
    assert 0 < result["voltage_sd_v"] < 0.003


# --- physics through the bench -------------------------------------------------------------------------------------


def test_no_vessel_in_the_light_path_reads_the_blank(rig: Callable[..., Rig]) -> None:
    _, _, _, driver = rig(noise_sd_v=0.0)
    assert driver.execute("measure_voltage", {})["voltage_v"] == pytest.approx(BLANK_V + DARK_V, abs=1e-5)
    assert driver.status()["range_v"] == 10.0  # autorange at power-on found the 10 V range for 5 V


def test_the_reading_gives_back_the_absorbance_of_the_reacted_vessel(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig(seed=3)
    driver.execute("configure_dc_voltage", {"range_v": 10, "nplc": 10})
    vessel = bench.place("photometer", "vial-1")
    with bench.lock:
        vessel.dose(0.2)
        vessel.react(temperature_c=90, stir_rpm=600, seconds=3600)
    assert _product_absorbance(vessel) > 0.2, "the reaction made enough product to see"
    result = driver.execute("measure_voltage", {"samples": 20})
    # noise 0.5 mV at 1 PLC, /sqrt(10) at 10 PLC, /sqrt(20) in the mean: ~35 µV on a signal of ~1 V
    assert _absorbance(result["voltage_v"]) == pytest.approx(_product_absorbance(vessel), abs=0.002)
    assert result["voltage_sd_v"] == pytest.approx(0.0005 / math.sqrt(10), rel=0.5)


def test_more_product_absorbs_more_light(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig(noise_sd_v=0.0)
    readings = []
    for key, seconds in (("short", 600), ("long", 5400)):
        vessel = bench.place("photometer", key)
        with bench.lock:
            vessel.dose(0.3)
            vessel.react(temperature_c=90, stir_rpm=600, seconds=seconds)
        volts = driver.execute("measure_voltage", {})["voltage_v"]
        assert _absorbance(volts) == pytest.approx(_product_absorbance(vessel), abs=1e-4)
        readings.append(volts)
    assert readings[1] < readings[0] < BLANK_V
    bench.remove("photometer")
    assert driver.execute("measure_voltage", {})["voltage_v"] == pytest.approx(BLANK_V + DARK_V, abs=1e-5)


def test_resolution_follows_the_integration_time(rig: Callable[..., Rig]) -> None:
    _, twin, _, driver = rig(noise_sd_v=0.0, blank_v=4.2314)
    driver.execute("configure_dc_voltage", {"range_v": 10, "nplc": 0.1})
    assert driver.query(":READ?") == "+4.23190000E+00"  # 5½ digits on the 10 V range: 100 µV
    driver.execute("configure_dc_voltage", {"range_v": 10, "nplc": 1})
    assert driver.query(":READ?") == "+4.23190000E+00"  # 6½ digits: 10 µV (4.2314 + 0.0005 dark)
    driver.execute("configure_dc_voltage", {"range_v": 100, "nplc": 0.01})
    assert driver.query(":READ?") == "+4.23000000E+00"  # 4½ digits on the 100 V range: 10 mV
    assert twin.range_v == 100.0


def test_a_reading_past_the_range_is_an_overflow_device_error(rig: Callable[..., Rig]) -> None:
    _, _, server, driver = rig()
    result = driver.execute("configure_dc_voltage", {"range_v": 1, "nplc": 1})
    assert result == {"range_v": 1.0, "nplc": 1.0}
    with pytest.raises(DeviceError) as caught:
        driver.execute("measure_voltage", {"samples": 3})
    assert caught.value.code == OVERFLOW_CODE and caught.value.instrument == "photometer"
    assert server.log[-1] == ":READ?", "the first overflow ends the measurement"
    driver.execute("configure_dc_voltage", {"range_v": 1, "nplc": 1, "autorange": True})
    assert driver.execute("measure_voltage", {})["voltage_v"] == pytest.approx(BLANK_V, abs=0.01)
    assert driver.status() == {"function": "VOLT:DC", "range_v": 10.0, "autorange": True, "nplc": 1.0}


# --- the error queue and the device's own errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (":SENS:VOLT:DC:NPLC 20", "-222"),
        (":SENS:VOLT:DC:RANG 2000", "-222"),
        (":SENS:VOLT:DC:NPLC", "-109"),
        (":SENS:VOLT:DC:NPLC 1,2", "-108"),
        (":SENS:VOLT:DC:NPLC fast", "-141"),
        (":SENS:VOLT:DC:NPLC 1.2.3", "-120"),
        (":BOGUS:COMMAND 1", "-113"),
        (":READ", "-113"),  # query-only header without the ?
        (":SENS2:VOLT:DC:NPLC 1", "-114"),
        (":SENS::VOLT 1", "-102"),
        (":SENS:FUNC VOLT", "-104"),
        (":SENS:FUNC 'RES'", "-224"),
        (":FORM:DATA SRE", "-221"),
        (":INIT", "-213"),  # continuous initiation is on after :SYST:PRES
    ],
)
def test_each_scpi_error_is_a_device_error_with_its_code(rig: Callable[..., Rig], command: str, code: str) -> None:
    _, _, _, driver = rig()
    if command == ":INIT":
        driver._setting(":SYST:PRES")
    with pytest.raises(DeviceError) as caught:
        driver._setting(command)
    assert caught.value.code == code
    assert caught.value.command == command
    assert driver.execute("read_errors", {}) == {"errors": "", "count": 0}, "the queue was emptied"
    driver.execute("reset", {})
    driver.execute("measure_voltage", {})  # and the driver goes on


def test_read_errors_drains_the_queue_and_shows_its_overflow(rig: Callable[..., Rig]) -> None:
    _, twin, _, driver = rig()
    for _ in range(12):
        driver.send(":BOGUS")
    driver.send(":SENS:VOLT:DC:NPLC 99")
    result = driver.execute("read_errors", {})
    entries = result["errors"].split(";")
    assert result["count"] == 10 == len(entries)
    assert entries[0] == '-113,"Undefined header"' and entries[-1] == '-350,"Queue overflow"'
    assert twin.errors == []
    assert driver.execute("read_errors", {}) == {"errors": "", "count": 0}


def test_read_with_continuous_initiation_on_is_init_ignored(rig: Callable[..., Rig]) -> None:
    """A 2000 measuring continuously (its power-on state) answers :READ? but queues -213; connect turns it off."""
    _, twin, _, driver = rig(connect=False)
    assert twin.continuous
    driver.connect()
    assert not twin.continuous and twin.remote
    driver.send(":INIT:CONT ON")  # e.g. someone's program in between
    with pytest.raises(DeviceError) as caught:
        driver.execute("measure_voltage", {"samples": 2})
    assert caught.value.code == "-213" and "Init ignored" in str(caught.value)
    driver.execute("reset", {})
    assert not twin.continuous
    assert driver.execute("measure_voltage", {})["voltage_v"] > 4


def test_connect_selects_the_reading_element_only(rig: Callable[..., Rig]) -> None:
    _, twin, _, driver = rig(connect=False)
    twin.elements = ["READ", "UNIT", "CHAN"]
    twin.errors.append((-113, "Undefined header"))  # left from an earlier session: cleared, not blamed on us
    driver.connect()
    assert twin.elements == ["READ"]
    driver.execute("measure_voltage", {})
    twin.elements = ["READ", "UNIT"]
    with pytest.raises(ProtocolError, match="FORMat:ELEMents READ"):
        driver.execute("measure_voltage", {})
    driver.execute("reset", {})
    assert twin.elements == ["READ"]


def test_close_gives_the_front_panel_back(rig: Callable[..., Rig]) -> None:
    _, twin, server, driver = rig()
    assert twin.remote
    driver.close()
    assert not twin.remote  # in-process, an unanswered command has reached the twin when the write returns
    assert server.log[-1] == ":SYST:LOC"
    driver.close()  # twice is harmless, and sends nothing
    assert server.log[-1] == ":SYST:LOC" and len([r for r in server.log if r == ":SYST:LOC"]) == 1


def test_a_query_the_meter_cannot_answer_is_explained_by_its_error_queue(rig: Callable[..., Rig]) -> None:
    """:FETCh? with no fresh reading: no answer and -230 queued. The timeout becomes that DeviceError."""
    _, _, server, driver = rig(settings={"timeout_s": 0.2, "grace_s": 0.05, "retries": 1, "backoff_s": 0.01})
    driver.execute("reset", {})
    with pytest.raises(DeviceError) as caught:
        driver._query_parsed(":FETC?", parse_reading)
    assert caught.value.code == "-230" and "Data corrupt or stale" in str(caught.value)
    assert server.log.count(":FETC?") == 2, "queries are retried before the error queue is asked"
    driver.query(":READ?")
    assert parse_reading(driver.query(":FETC?")) > 4, "after a reading, :FETCh? has one"


def test_device_error_faults_on_each_kind_of_request(rig: Callable[..., Rig]) -> None:
    _, twin, server, driver = rig(settings={"timeout_s": 0.2, "grace_s": 0.05, "retries": 1, "backoff_s": 0.01})
    # a setting the meter refuses
    server.faults.script[:] = [None, None, "device_error"]  # :CONF, :SYST:ERR?, then :RANG is refused
    with pytest.raises(DeviceError) as caught:
        driver.execute("configure_dc_voltage", {"range_v": 10, "nplc": 2})
    assert caught.value.code == "-221"
    # the error query itself
    server.faults.script[:] = [None, "device_error"]  # :READ?, then :SYST:ERR?
    with pytest.raises(DeviceError) as caught:
        driver.execute("measure_voltage", {})
    assert caught.value.code == "-350"
    # a status query that goes unanswered twice: the queue says why
    server.faults.script[:] = ["device_error", "device_error"]
    with pytest.raises(DeviceError) as caught:
        driver.status()
    assert caught.value.code == "-200" and caught.value.command == ":SENS:FUNC?"
    server.faults.script.clear()
    assert driver.execute("configure_dc_voltage", {"range_v": 10, "nplc": 2}) == {"range_v": 10.0, "nplc": 2.0}
    assert twin.errors == []


def test_the_error_query_is_never_resent(rig: Callable[..., Rig]) -> None:
    """Each :SYST:ERR? removes the entry it reports: after a garbled answer, asking again could lose an error."""
    _, _, server, driver = rig()
    server.faults.script[:] = [None, "garbled"]  # :READ?, then :SYST:ERR?
    with pytest.raises(ProtocolError):
        driver.execute("measure_voltage", {})
    assert server.log[-2:] == [":READ?", ":SYST:ERR?"]
    assert driver.execute("measure_voltage", {})["voltage_v"] > 4


def test_a_lost_setting_is_caught_by_the_read_back(rig: Callable[..., Rig]) -> None:
    _, _, server, driver = rig()
    server.faults.script[:] = [None, None, None, None, "no_answer"]  # CONF, ERR?, RANG, ERR?, NPLC lost
    with pytest.raises(ProtocolError, match=r"NPLC 1 \(asked 5\)"):
        driver.execute("configure_dc_voltage", {"range_v": 10, "nplc": 5})
    assert driver.execute("configure_dc_voltage", {"range_v": 10, "nplc": 5}) == {"range_v": 10.0, "nplc": 5.0}


def test_a_session_setting_lost_at_connect_is_caught(rig: Callable[..., Rig]) -> None:
    """*IDN?, *CLS, :SYST:ERR?, :SYST:REM, :SYST:ERR?, :SENS:FUNC, :SYST:ERR?, then :INIT:CONT OFF is lost."""
    _, twin, server, driver = rig(connect=False)
    server.faults.script[:] = [None] * 7 + ["no_answer"]
    with pytest.raises(ProtocolError, match="CONTinuous OFF"):
        driver.connect()
    assert twin.continuous
    driver.connect()
    assert not twin.continuous
    assert driver.execute("measure_voltage", {})["voltage_v"] > 4


def test_the_reading_timeout_grows_with_the_integration_time(rig: Callable[..., Rig]) -> None:
    """At 10 PLC a reading takes 1/6 s on a 60 Hz line: a 0.1 s timeout alone would cut it off. Over a real pty
    and in real time: in-process, the time a twin spends on a request passes before the driver starts waiting."""
    _, _, _, driver = rig(pty=True, time_scale=1.0, settings={"timeout_s": 0.1, "retries": 0})
    driver.execute("configure_dc_voltage", {"range_v": 10, "nplc": 10})
    assert driver.execute("measure_voltage", {"samples": 2})["voltage_v"] > 4


# --- the twin's SCPI parser -------------------------------------------------------------------------------------------


@pytest.fixture
def meter() -> Keithley2000Twin:
    return Keithley2000Twin(Bench(time_scale=1000, seed=0), noise_sd_v=0.0)


def test_long_short_and_optional_forms_are_one_command(meter: Keithley2000Twin) -> None:
    meter.handle(":sense1:voltage:dc:nplcycles 2")
    assert meter.handle(":SENS:VOLT:NPLC?") == ["+2.00000000E+00"]
    meter.handle("VOLT:NPLC MAX")
    assert meter.handle("VOLTAGE:DC:NPLCYCLES?") == ["+1.00000000E+01"]
    meter.handle(":SENS:VOLT:DC:RANG:UPP 0.5")
    assert meter.handle(":SENS:VOLT:DC:RANG?;RANG:AUTO?") == ["+1.00000000E+00;0"]
    assert meter.handle("*idn?") == ["KEITHLEY INSTRUMENTS INC.,MODEL 2000,1234567,A20  /A02"]
    assert meter.errors == []


def test_a_message_continues_the_path_and_stops_at_an_error(meter: Keithley2000Twin) -> None:
    assert meter.handle(":SENS:VOLT:DC:RANG 100;NPLC 0.5;NPLC?;:SYST:ERR?") == ['+5.00000000E-01;0,"No error"']
    assert meter.range_v == 100.0 and not meter.autorange
    assert meter.handle(":SENS:VOLT:DC:NPLC 3;NPLC 77;NPLC 4") == []
    assert meter.nplc == 3.0, "the error stopped the message"
    assert meter.handle(":SYST:ERR?") == ['-222,"Parameter data out of range"']
    assert meter.handle("*ESR?") == ["16"] and meter.handle("*ESR?") == ["0"]


def test_rst_and_preset_defaults(meter: Keithley2000Twin) -> None:
    assert meter.continuous, "at power-on the meter measures continuously"
    meter.handle(":SENS:VOLT:DC:RANG 1;NPLC 10;:FORM:ELEM READ,UNIT")
    assert meter.handle(":READ?") == ["+9.90000000E+37"], "5 V on the 1 V range, no units on an overflow"
    assert meter.errors == [(-213, "Init ignored")], "continuous initiation was on"
    meter.handle("*RST;*CLS")
    assert (meter.autorange, meter.nplc, meter.continuous) == (True, 1.0, False)
    assert meter.handle(":READ?") == ["+5.00050000E+00VDC"]
    assert meter.handle(":FORM:ELEM?") == ["READ,UNIT"]
    meter.handle(":SYST:PRES")
    assert meter.continuous and meter.handle(":INIT:CONT?") == ["1"]
    assert meter.handle(":MEAS:VOLT:DC?") == ["+5.00050000E+00VDC"], ":MEAS? configures one-shot first"
    assert not meter.continuous and meter.errors == []


def test_fault_replies_are_the_devices_own(meter: Keithley2000Twin) -> None:
    assert meter.error_reply(":READ?") == ["+9.90000000E+37"]
    assert meter.error_reply(":meas:volt?") == ["+9.90000000E+37"]
    assert meter.error_reply(":SYST:ERR?") == ['-350,"Queue overflow"']
    assert meter.error_reply("*IDN?") == [] and meter.errors == [(-200, "Execution error")]
    assert meter.error_reply(":SENS:VOLT:DC:NPLC 1") == [] and meter.errors[-1] == (-221, "Settings conflict")
    assert meter.answers("*IDN?") and meter.answers(":SENS:VOLT:DC:NPLC?") and not meter.answers("*RST")


def test_the_twin_refuses_options_it_cannot_be() -> None:
    with pytest.raises(ValueError):
        Keithley2000Twin(Bench(), blank_v=0)
    with pytest.raises(ValueError):
        Keithley2000Twin(Bench(), serial="12,34")
    with pytest.raises(ValueError):
        Keithley2000Twin(Bench(), noise_sd_v=math.nan)


# --- parsers ---------------------------------------------------------------------------------------------------------


def test_parsers_on_the_manuals_formats() -> None:
    assert parse_reading("+4.23140000E+00") == 4.2314
    assert parse_reading("-1.23456789E-03") == -0.00123456789
    with pytest.raises(DeviceError) as caught:
        parse_reading("+9.9E37")
    assert caught.value.code == OVERFLOW_CODE
    with pytest.raises(DeviceError):
        parse_reading("-9.90000000E+37")
    for bad in ("4.2314", "+4.2314E", "1e5", "+4.23140000E+00VDC", "+4.23E+00,0INTCHAN", "", "nan", "+INF"):
        with pytest.raises(ProtocolError):
            parse_reading(bad)
    assert parse_error_entry('0,"No error"') == (0, "No error")
    assert parse_error_entry('-113,"Undefined header"') == (-113, "Undefined header")
    assert parse_error_entry('+510,"Reading buffer data lost"') == (510, "Reading buffer data lost")
    assert parse_error_entry('-100,"Say ""hi"""') == (-100, 'Say "hi"')
    assert parse_number("+1.00000000E+01") == 10.0 and parse_number("1") == 1.0
    assert parse_boolean("1") and not parse_boolean("0")
    assert parse_quoted('"VOLT:DC"') == "VOLT:DC" and parse_quoted("'VOLT'") == "VOLT"
    assert parse_elements("READ,UNIT") == ("READ", "UNIT")
    parse_opc("1")
    with pytest.raises(ProtocolError, match="not a Keithley"):
        parse_identity("ACME,MODEL 2000,1,2")


VALID = [
    "+4.23140000E+00",
    "+9.90000000E+37",
    '-113,"Undefined header"',
    '0,"No error"',
    "KEITHLEY INSTRUMENTS INC.,MODEL 2000,1234567,A20  /A02",
    '"VOLT:DC"',
    "READ,UNIT",
    "1",
]
PARSERS = [parse_reading, parse_number, parse_boolean, parse_quoted, parse_opc, parse_elements, parse_error_entry]
PARSERS.append(parse_identity)


class TestKeithley2000Parsers(ParserConformance):
    parsers = tuple(PARSERS)
    valid_answers = tuple(VALID)


def test_a_parser_given_no_text_is_a_protocol_error() -> None:
    for parser in PARSERS:
        with pytest.raises(ProtocolError):
            parser(None)  # type: ignore[arg-type]


def test_timeouts_without_an_error_entry_stay_timeouts(rig: Callable[..., Rig]) -> None:
    _, _, server, driver = rig(settings={"timeout_s": 0.2, "grace_s": 0.05, "retries": 0})
    server.faults.script[:] = ["no_answer"]
    with pytest.raises(InstrumentTimeout):
        driver.execute("measure_voltage", {})
    assert driver.execute("measure_voltage", {})["voltage_v"] > 4


# --- four-wire resistance: a four-point probe on a film -------------------------------------------------------------


def test_four_wire_resistance_of_the_film_under_the_probe(rig: Callable[..., Rig]) -> None:
    bench, twin, server, driver = rig(fres_noise_ppm=0.0)
    bench.place("photometer", "film").resistance_ohm = 22.1234
    result = driver.execute("configure_resistance_4w", {"range_ohm": 50, "nplc": 1})
    assert result == {"range_ohm": 100.0, "nplc": 1.0}, "the lowest range holding 50 ohm"
    measured = driver.execute("measure_resistance_4w", {"samples": 3})
    assert measured == {"resistance_ohm": pytest.approx(22.1234, abs=1e-4), "resistance_sd_ohm": 0.0}
    assert twin.function == "FRES" and server.log.count(":READ?") == 3
    assert driver.query(":READ?") == "+2.21234000E+01", "6½ digits on the 100 ohm range"


def test_each_function_keeps_its_settings_and_a_measurement_selects_its_own(rig: Callable[..., Rig]) -> None:
    bench, twin, server, driver = rig()
    bench.place("photometer", "film").resistance_ohm = 5.0e4
    driver.execute("configure_dc_voltage", {"range_v": 10, "nplc": 2})
    driver.execute("configure_resistance_4w", {"range_ohm": 1e5, "nplc": 5})
    assert (twin.range_v, twin.nplc, twin.fres_range_ohm, twin.fres_nplc) == (10.0, 2.0, 1e5, 5.0)
    start = len(server.log)
    volts = driver.execute("measure_voltage", {})["voltage_v"]
    assert volts == pytest.approx(BLANK_V + DARK_V, abs=0.003), "volts, not ohms"
    assert server.log[start] == ":SENS:FUNC 'VOLT:DC'" and twin.function == "VOLT:DC"
    assert (twin.range_v, twin.nplc) == (10.0, 2.0), ":SENSe:FUNCtion keeps the function's settings"
    assert driver.execute("measure_resistance_4w", {})["resistance_ohm"] == pytest.approx(5.0e4, rel=1e-3)
    assert twin.function == "FRES" and (twin.fres_range_ohm, twin.fres_nplc) == (1e5, 5.0)
    start = len(server.log)
    driver.execute("measure_resistance_4w", {"samples": 2})
    assert server.log[start:] == [":READ?", ":READ?", ":SYST:ERR?"], "the function is selected once"
    driver.execute("reset", {})
    assert twin.function == "VOLT:DC"
    assert driver.execute("measure_voltage", {})["voltage_v"] > 4


def test_an_open_probe_or_an_insulating_film_is_an_overflow(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig()
    driver.execute("configure_resistance_4w", {"range_ohm": 1e8, "nplc": 1, "autorange": True})
    with pytest.raises(DeviceError) as caught:
        driver.execute("measure_resistance_4w", {})  # nothing under the probe
    assert caught.value.code == OVERFLOW_CODE
    film = bench.place("photometer", "film")
    film.resistance_ohm = 3.0e8  # past 120 % of the 100 MΩ range
    with pytest.raises(DeviceError):
        driver.execute("measure_resistance_4w", {})
    film.resistance_ohm = 2.5e3
    driver.execute("configure_resistance_4w", {"range_ohm": 1000, "nplc": 1})
    with pytest.raises(DeviceError):
        driver.execute("measure_resistance_4w", {}), "2.5 kΩ on the fixed 1 kΩ range"
    driver.execute("configure_resistance_4w", {"range_ohm": 100, "nplc": 1, "autorange": True})
    assert driver.execute("measure_resistance_4w", {})["resistance_ohm"] == pytest.approx(2.5e3, rel=1e-3)


def test_a_lost_function_selection_is_caught_by_the_read_back(rig: Callable[..., Rig]) -> None:
    bench, twin, server, driver = rig()
    bench.place("photometer", "film").resistance_ohm = 100.0
    server.faults.script[:] = ["no_answer"]  # :SENS:FUNC 'FRES' is lost
    with pytest.raises(ProtocolError, match="did not select FRES"):
        driver.execute("measure_resistance_4w", {})
    assert twin.function == "VOLT:DC" and ":READ?" not in server.log[-3:]
    assert driver.execute("measure_resistance_4w", {})["resistance_ohm"] == pytest.approx(100.0, rel=1e-3)


def test_the_twins_four_wire_commands(meter: Keithley2000Twin) -> None:
    meter.bench.place("photometer", "film").resistance_ohm = 1234.5
    meter.handle("*RST;:FORM:ELEM READ,UNIT")
    assert meter.handle(":MEAS:FRES?") == ["+1.23450000E+03OHM4W"]
    assert meter.handle(":CONF?;:SENS:FUNC?") == ['"FRES";"FRES"']
    meter.handle(":sense:fresistance:nplcycles 0.1;range:upper 5e3")
    assert meter.handle(":SENS:FRES:RANG?;RANG:AUTO?;:SENS:FRES:NPLC?") == ["+1.00000000E+04;0;+1.00000000E-01"]
    assert meter.handle(":READ?") == ["+1.23450000E+03OHM4W"]
    meter.handle(":SENS:FRES:RANG MAX")
    assert meter.fres_range_ohm == 1e8 and meter.errors == []
    meter.handle(":SENS:FRES:RANG 2e8")
    assert meter.errors == [(-222, "Parameter data out of range")]
    meter.handle(":SENS:FUNC 'VOLT';:SENS:FUNC 'FRESISTANCE'")
    assert meter.function == "FRES"
    assert meter.error_reply(":MEAS:FRES?") == [OVERFLOW]
