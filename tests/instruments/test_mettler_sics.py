"""The MT-SICS balance driver against its twin: the conformance kit, the weighing physics through the bench, the
balance's error answers, and the response parsers under random and truncated input."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruments.clock import ManualClock
from instruments.conformance import DriverConformance, ParserConformance, link_options
from instruments.drivers.mettler_sics import (
    MettlerSicsBalance,
    parse_ack,
    parse_device_data,
    parse_reply,
    parse_tare_response,
    parse_tare_value_response,
    parse_text_response,
    parse_weight_response,
    split_fields,
    to_grams,
)
from instruments.errors import DeviceError, ProtocolError
from simulators.twins.bench import Bench
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.mettler_sics import MettlerSicsTwin
from simulators.twins.server import TwinServer

# The surrogate's stated constants, worked out by hand (not through the bench's own mass formula):
# a vial weighs 11.482 g empty and is charged with 2.0 mL of a solution of density 0.87 g/mL.
DENSITY_G_ML = 0.87
CHARGED_G = 13.222  # 11.482 + 2.0 * 0.87
READABILITY = 0.0001


class TestMettlerSicsConformance(DriverConformance):
    driver_class = MettlerSicsBalance
    examples = [  # noqa: RUF012 - the kit's declared ClassVar
        ("zero", {"timeout_s": 10}),
        ("tare", {"timeout_s": 10}),
        ("clear_tare", {}),
        ("weigh", {"timeout_s": 10}),
        ("weigh_immediate", {}),
    ]
    query_action = ("weigh_immediate", {})
    moving_action = None
    never_resent = ()

    @pytest.fixture
    def twin(self) -> Iterator[TwinServer]:
        with TwinServer(MettlerSicsTwin(Bench(time_scale=100, seed=1)), name="balance") as server:
            server.start_pty()
            yield server


class TestMettlerSicsConformanceInProcess(TestMettlerSicsConformance):
    """The same kit on the loopback link: it must behave as the pty does, fault for fault."""

    @pytest.fixture
    def twin(self) -> Iterator[LoopbackTwin]:
        clock = ManualClock()
        twin = MettlerSicsTwin(Bench(time_scale=100, seed=1, wall_clock=clock))
        with LoopbackTwin(twin, name="balance", clock=clock) as server:
            yield server


# --- a balance on a bench, for the physics and error tests -----------------------------------------------------------

Rig = tuple[Bench, MettlerSicsTwin, LoopbackTwin, MettlerSicsBalance]


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    """Builds bench + twin (in-process, on a manual clock the driver shares) + connected driver; `time_scale` and
    twin options as keywords."""
    opened: list[tuple[LoopbackTwin, MettlerSicsBalance]] = []

    def build(time_scale: float = 100.0, seed: int = 7, **options: Any) -> Rig:
        clock = ManualClock()
        bench = Bench(time_scale=time_scale, seed=seed, wall_clock=clock)
        twin = MettlerSicsTwin(bench, **options)
        server = LoopbackTwin(twin, name="balance", clock=clock)
        driver = MettlerSicsBalance(
            server.url, instrument="balance", settings={"timeout_s": 2.0}, **link_options(server)
        )
        opened.append((server, driver))
        driver.connect()
        return bench, twin, server, driver

    yield build
    for server, driver in opened:
        driver.close()
        server.stop()


def test_identity_comes_from_i2_i3_i4(rig: Callable[..., Rig]) -> None:
    _, _, server, driver = rig()
    assert driver.identity == {
        "model": "XPR205 Excellence",
        "capacity": "220.0000 g",
        "serial_number": "B123456789",
        "software_version": "1.10",
        "type_definition": "18.6.4.1361.772",
    }
    assert server.log[:3] == ["I2", "I3", "I4"]


def test_works_over_tcp_as_through_a_serial_device_server() -> None:
    bench = Bench(time_scale=100, seed=3)
    with TwinServer(MettlerSicsTwin(bench), name="balance") as server:
        url = server.start_tcp()
        assert url.startswith("socket://")
        driver = MettlerSicsBalance(url, instrument="balance", settings={"timeout_s": 2.0})
        try:
            assert driver.connect()["serial_number"] == "B123456789"
            bench.place("balance", "vial-1")
            mass = driver.execute("weigh")["mass_g"]
            assert mass == pytest.approx(CHARGED_G, abs=READABILITY / 2 + 5 * 0.00005)
            assert driver.status()["state"] == "stable"
        finally:
            driver.close()


# --- physics: what the balance reads is what happened to the vessel --------------------------------------------------


def test_weighs_the_vessel_after_a_dose(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig(noise_sd_g=0.0)
    vessel = bench.place("balance", "vial-1")
    with bench.lock:
        vessel.dose(1.0)
    mass = driver.execute("weigh")["mass_g"]
    expected = 14.092  # 11.482 + (2.0 + 1.0) * 0.87
    assert mass == pytest.approx(expected, abs=READABILITY / 2 + 1e-9)
    assert round(mass / READABILITY) == pytest.approx(mass / READABILITY, abs=1e-6), "rounded to the readability"


def test_noise_is_seeded_and_within_readability(rig: Callable[..., Rig]) -> None:
    readings = []
    for _ in range(2):
        bench, _, _, driver = rig(seed=11)
        bench.place("balance", "vial-1")
        readings.append([driver.execute("weigh")["mass_g"] for _ in range(5)])
    assert readings[0] == readings[1], "the same seed gives the same readings"
    for mass in readings[0]:
        assert mass == pytest.approx(CHARGED_G, abs=READABILITY / 2 + 5 * 0.00005)


def test_tare_then_weigh_reads_the_net_weight(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig()
    bench.place("balance", "vial-1")
    tare = driver.execute("tare")["tare_g"]
    assert tare == pytest.approx(CHARGED_G, abs=3 * READABILITY)
    assert driver.status()["tare_g"] == tare
    assert abs(driver.execute("weigh")["mass_g"]) <= 3 * READABILITY
    bench.remove("balance")
    assert driver.execute("weigh")["mass_g"] == pytest.approx(-tare, abs=3 * READABILITY)
    driver.execute("clear_tare")
    assert driver.status()["tare_g"] == 0.0
    assert abs(driver.execute("weigh")["mass_g"]) <= 3 * READABILITY


def test_a_dose_shows_as_net_weight_after_taring(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig()
    vessel = bench.place("balance", "vial-1")
    driver.execute("tare")
    with bench.lock:
        vessel.dose(0.5)
    assert driver.execute("weigh")["mass_g"] == pytest.approx(0.435, abs=3 * READABILITY)  # 0.5 mL * 0.87 g/mL


def test_unstable_while_settling_then_stable(rig: Callable[..., Rig]) -> None:
    # 5 simulated s of settling at 10x: half a second of wall time in which SI must report a dynamic value.
    bench, _, _, driver = rig(time_scale=10.0, settle_s=5.0)
    bench.place("balance", "vial-1")
    placed_at = bench.clock.now()
    moving = driver.execute("weigh_immediate")
    assert moving["stable"] == 0.0
    assert 0.0 <= moving["mass_g"] < CHARGED_G, "the reading swings up from the empty pan"
    assert driver.status()["state"] == "dynamic"
    mass = driver.execute("weigh")["mass_g"]  # S waits for stability
    assert bench.clock.now() >= placed_at + 5.0
    assert mass == pytest.approx(CHARGED_G, abs=READABILITY / 2 + 5 * 0.00005)
    assert driver.execute("weigh_immediate")["stable"] == 1.0


def test_settling_counts_from_the_move_not_from_the_next_question(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig(time_scale=100.0, settle_s=2.0)
    bench.place("balance", "vial-1")
    bench.sleep(2.5)  # the vial stood on the pan long enough, before anyone asked
    assert driver.execute("weigh_immediate")["stable"] == 1.0


def test_a_mass_change_without_a_move_unsettles_the_balance(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig(time_scale=10.0, settle_s=5.0)
    vessel = bench.place("balance", "vial-1")
    driver.execute("weigh")
    with bench.lock:
        vessel.dose(0.2)  # e.g. a dosing head above the pan
    assert driver.execute("weigh_immediate")["stable"] == 0.0
    heavier = 13.396  # 13.222 + 0.2 mL * 0.87 g/mL
    assert driver.execute("weigh")["mass_g"] == pytest.approx(heavier, abs=READABILITY / 2 + 5 * 0.00005)


def test_no_stability_within_the_balance_timeout_is_s_i(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig(settle_s=20.0, stability_timeout_s=5.0)
    bench.place("balance", "vial-1")
    for action, code in (("weigh", "S I"), ("tare", "T I"), ("zero", "Z I")):
        before = bench.clock.now()
        with pytest.raises(DeviceError) as caught:
            driver.execute(action)
        assert caught.value.code == code
        assert bench.clock.now() - before >= 5.0, f"{action}: the balance waited its timeout first"


def test_zero_sets_the_zero_point_within_its_range(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig()
    bench.place("balance", "vial-1")
    with pytest.raises(DeviceError) as caught:
        driver.execute("zero")  # 14 g is beyond 2 % of 220 g
    assert caught.value.code == "Z +"
    bench.remove("balance")
    driver.execute("zero")
    assert abs(driver.execute("weigh")["mass_g"]) <= 3 * READABILITY


def test_zero_clears_the_tare_and_below_zero_cannot_be_tared(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig(zero_range_g=20.0)
    bench.place("balance", "vial-1")
    driver.execute("tare")
    driver.execute("zero")
    assert driver.status()["tare_g"] == 0.0
    assert abs(driver.execute("weigh")["mass_g"]) <= 3 * READABILITY
    bench.remove("balance")
    assert driver.execute("weigh")["mass_g"] == pytest.approx(-CHARGED_G, abs=3 * READABILITY)
    with pytest.raises(DeviceError) as caught:
        driver.execute("tare")
    assert caught.value.code == "T -"


def test_overload(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig(capacity_g=10.0, readability_g=0.001)
    bench.place("balance", "vial-1")
    for action, code in (("weigh", "S +"), ("weigh_immediate", "S +"), ("tare", "T +")):
        with pytest.raises(DeviceError) as caught:
            driver.execute(action)
        assert caught.value.code == code
    assert driver.status()["state"] == "overload"


@pytest.mark.parametrize(("unit", "suffix"), [("mg", " mg"), ("kg", " kg")])
def test_other_host_units_are_converted_to_grams(rig: Callable[..., Rig], unit: str, suffix: str) -> None:
    bench, _, _, driver = rig(unit=unit, noise_sd_g=0.0)
    bench.place("balance", "vial-1")
    assert driver.execute("weigh")["mass_g"] == pytest.approx(CHARGED_G, abs=READABILITY / 2 + 1e-9)
    assert driver.execute("tare")["tare_g"] == pytest.approx(CHARGED_G, abs=READABILITY / 2 + 1e-9)
    received = [e.data for e in driver.transport.transcript.entries if e.direction == "rx"]
    assert received[-1].endswith(suffix)


def test_reset_clears_the_tare_and_answers_the_serial_number(rig: Callable[..., Rig]) -> None:
    bench, _, _, driver = rig()
    bench.place("balance", "vial-1")
    driver.execute("tare")
    assert driver.reset() == "B123456789"
    assert driver.status()["tare_g"] == 0.0


def test_safe_state_sends_nothing(rig: Callable[..., Rig]) -> None:
    _, _, server, driver = rig()
    sent = len(server.log)
    driver.abort()
    assert len(server.log) == sent


# --- the wire, byte for byte -------------------------------------------------------------------------------------


def test_twin_replies_in_the_manual_formats() -> None:
    bench = Bench(time_scale=1000, seed=0)
    twin = MettlerSicsTwin(bench, noise_sd_g=0.0)
    assert twin.handle("SI") == ["S S     0.0000 g"]
    assert twin.handle("S") == ["S S     0.0000 g"]
    assert twin.handle("I2") == ['I2 A "XPR205 Excellence 220.0000 g"']
    assert twin.handle("I3") == ['I3 A "1.10 18.6.4.1361.772"']
    assert twin.handle("I4") == ['I4 A "B123456789"']
    assert twin.handle("@") == ['I4 A "B123456789"']
    assert twin.handle("TA") == ["TA A     0.0000 g"]
    assert twin.handle("TA 12.5 g") == ["TA A    12.5000 g"]
    assert twin.handle("TAC") == ["TAC A"]
    assert twin.handle("Z") == ["Z A"]
    bench.place("balance", "v")  # T waits out the 2 simulated s of settling, then tares the settled load
    assert twin.handle("T") == ["T S    13.2220 g"]
    assert twin.handle("S") == ["S S     0.0000 g"]
    assert MettlerSicsTwin(Bench(), capacity_g=6200, readability_g=0.01, unit="kg").handle("I2") == [
        'I2 A "XPR205 Excellence 6200.00 g"'
    ]


def test_twin_error_answers() -> None:
    twin = MettlerSicsTwin(Bench(seed=0))
    assert twin.handle("XYZ") == ["ES"]
    assert twin.handle("s") == ["ES"], "commands are in capitals"
    assert twin.handle("") == ["ES"]
    assert twin.handle("S\ufffd") == ["ET"], "a garbled byte is a transmission error"
    assert twin.handle("S 1") == ["EL"]
    assert twin.handle("TA 300 g") == ["TA L"], "above the capacity"
    assert twin.handle("TA 1 lb") == ["TA L"]
    assert twin.error_reply("SI") == ["S I"]
    assert twin.error_reply("T") == ["T I"]
    assert twin.error_reply("@") == ["EL"]


def test_device_error_answers_over_the_line_are_typed(rig: Callable[..., Rig]) -> None:
    _, _, server, driver = rig()
    for command, ident, code in (("XYZ", None, "ES"), ("S 1", "S", "EL"), ("TA 999 g", None, "TA L")):
        with pytest.raises(DeviceError) as caught:
            driver.exchange(command, ident)
        assert caught.value.code == code
    assert driver.exchange("TA 1.5 g").fields == ("1.5000", "g")
    for action, code in (("zero", "Z I"), ("tare", "T I"), ("clear_tare", "TAC I"), ("weigh", "S I")):
        server.faults.script[:] = ["device_error"]
        with pytest.raises(DeviceError) as caught:
            driver.execute(action)
        assert caught.value.code == code
        assert caught.value.instrument == "balance"


@pytest.mark.parametrize(
    ("line", "ident", "code"),
    [
        ("ES", "S", "ES"),
        ("ET", "S", "ET"),
        ("EL", "TA", "EL"),
        ("S I", "S", "S I"),
        ("S +", "S", "S +"),
        ("S -", "S", "S -"),
        ("Z I", "Z", "Z I"),
        ("Z +", "Z", "Z +"),
        ("Z -", "Z", "Z -"),
        ("T I", "T", "T I"),
        ("T +", "T", "T +"),
        ("T -", "T", "T -"),
        ("TA I", "TA", "TA I"),
        ("TA L", "TA", "TA L"),
        ("TAC I", "TAC", "TAC I"),
        ("I4 I", "I4", "I4 I"),
    ],
)
def test_every_error_code_is_a_device_error_with_its_code(line: str, ident: str, code: str) -> None:
    with pytest.raises(DeviceError) as caught:
        parse_reply(line, ident)
    assert caught.value.code == code


def test_weight_parsing() -> None:
    assert parse_weight_response("S S     100.00 g") == parse_weight_response("S S 100.00 g")
    weight = parse_weight_response("S S     100.00 g")
    assert (weight.grams, weight.stable) == (100.0, True)
    weight = parse_weight_response("S D    -0.5000 kg")
    assert (weight.grams, weight.stable) == (-500.0, False)
    assert parse_weight_response("S S  1234.5 mg").grams == pytest.approx(1.2345)
    assert parse_tare_response("T S    13.7420 g") == pytest.approx(13.742)
    assert parse_tare_value_response("TA A     0.0000 g") == 0.0
    with pytest.raises(ProtocolError, match=r"unexpected status"):
        parse_weight_response("S D 1.0 g", stable_only=True)
    for bad in ("S S 1.0 parsec", "S S 1.0", "S S nan g", "S S 1e3 g", "T S 1.0 g", "S X 1.0 g", "S S 1.0 g x"):
        with pytest.raises(ProtocolError):
            parse_weight_response(bad)
    with pytest.raises(ProtocolError, match="range"):
        to_grams("9" * 400, "kg")


def test_text_parsing() -> None:
    assert parse_text_response('I4 A "B123456789"', "I4") == "B123456789"
    assert split_fields('I2 A "XS205DU Excellence 220.0090 g"') == ("I2", "A", "XS205DU Excellence 220.0090 g")
    data = parse_device_data("WXS205SDU WXA-Bridge 220.00900 g")
    assert (data.model, data.capacity, data.unit) == ("WXS205SDU WXA-Bridge", "220.00900", "g")
    parse_ack("Z A", "Z")
    for bad, ident in (('I4 A "B12', "I4"), ("I4 A", "I4"), ('I3 A "1.10"', "I4"), ("Z A 1", "Z"), ("", "Z")):
        with pytest.raises(ProtocolError):
            (parse_ack if ident == "Z" else parse_text_response)(bad, ident)
    with pytest.raises(ProtocolError):
        parse_device_data("XPR205")


# --- the parsers under any input -----------------------------------------------------------------------------------

VALID_LINES = [
    "S S     100.00 g",
    "S D    -0.5000 kg",
    "T S    13.7420 g",
    "TA A     0.0000 g",
    "Z A",
    "TAC A",
    'I4 A "B123456789"',
    'I2 A "XPR205 Excellence 220.0000 g"',
    'I3 A "1.10 18.6.4.1361.772"',
    "ES",
    "S +",
]

PARSERS: list[Callable[[str], object]] = [
    lambda line: parse_reply(line, "S"),
    parse_weight_response,
    lambda line: parse_weight_response(line, stable_only=True),
    parse_tare_response,
    parse_tare_value_response,
    lambda line: parse_ack(line, "Z"),
    lambda line: parse_ack(line, "TAC"),
    lambda line: parse_text_response(line, "I4"),
    lambda line: parse_device_data(line),
    split_fields,
    lambda line: to_grams(*[*line.split(" ", 1), ""][:2]),
]


class TestMettlerSicsParsers(ParserConformance):
    parsers = tuple(PARSERS)
    valid_answers = tuple(VALID_LINES)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(VALID_LINES))
def test_valid_lines_parse(line: str) -> None:
    if line == "ES" or line.endswith("+"):
        with pytest.raises(DeviceError):
            parse_reply(line, "S")
        return
    ident = split_fields(line)[0]
    reply = parse_reply(line, ident)
    assert reply.ident == ident


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=-220, max_value=220, allow_nan=False), st.sampled_from(["g", "mg", "kg"]))
def test_every_reading_the_twin_can_send_parses_back(grams: float, unit: str) -> None:
    twin = MettlerSicsTwin(Bench(), unit=unit, noise_sd_g=0.0)
    line = f"S S {twin._value(grams)}"
    assert len(line.split(" ", 2)[2].rsplit(" ", 1)[0]) >= 10, "the value field is 10 characters wide"
    assert parse_weight_response(line).grams == pytest.approx(grams, abs=READABILITY / 2 + 1e-9)


def test_a_device_server_port_closed_and_opened_again_serves_each_time() -> None:
    """A shared instrument is connected for each experiment and closed after it: over TCP the socket is really
    closed each time (the one-client server takes the next connection), and opened again at once."""
    bench = Bench(time_scale=100, seed=3)
    with TwinServer(MettlerSicsTwin(bench), name="balance") as server:
        url = server.start_tcp()
        driver = MettlerSicsBalance(url, instrument="balance", settings={"timeout_s": 2.0})
        for _ in range(3):
            assert driver.connect()["serial_number"] == "B123456789"
            link = driver.transport._port
            driver.close()
            assert link is not None and not link.is_open
            assert not driver.transport.is_open
        # Another client (another campaign's runner) is served after the last close.
        other = MettlerSicsBalance(url, instrument="balance", settings={"timeout_s": 2.0})
        try:
            assert other.connect()["serial_number"] == "B123456789"
        finally:
            other.close()
