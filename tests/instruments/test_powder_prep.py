"""The generic powder-preparation station's driver against its twin: the conformance kit (pty and in-process),
recipes balanced onto the target's cations, the powder it leaves on the bench, and the parsers under random input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from instruments.clock import ManualClock
from instruments.conformance import DriverConformance, ParserConformance
from instruments.drivers.powder_prep import (
    PowderPrepStation,
    parse_identity,
    parse_ok,
    parse_ok_number,
    parse_status,
    recipe_masses,
)
from instruments.errors import DeviceError, InvalidAction
from simulators.twins.bench import Bench
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.powder_prep import PowderPrepTwin
from simulators.twins.server import TwinServer

RECIPE: dict[str, Any] = {"precursors": "Y2O3+BaO2+CuO", "target": "YBa2Cu3O6.5", "target_mmol": 1.0, "mill_min": 0.5}


def _bench(clock: ManualClock | None = None) -> Bench:
    bench = Bench(time_scale=1e4, seed=1, wall_clock=clock)
    bench.place("dut", "sample-1")  # the station's robot has put a vial under the dosing head
    return bench


class TestPowderPrepConformance(DriverConformance):
    driver_class = PowderPrepStation
    examples = [("prepare", RECIPE), ("read_vial", {})]  # noqa: RUF012 - the kit's declared ClassVar
    query_action = ("read_vial", {})
    moving_action = ("prepare", RECIPE)
    never_resent = ("NEW", "DOSE Y2O3,", "DOSE BaO2,", "DOSE CuO,", "MILL")  # each dose is its own request

    @pytest.fixture
    def twin(self) -> Iterator[TwinServer]:
        with TwinServer(PowderPrepTwin(_bench(), instrument="dut"), name="prep") as server:
            server.start_pty()
            yield server


class TestPowderPrepConformanceInProcess(TestPowderPrepConformance):
    @pytest.fixture
    def twin(self) -> Iterator[LoopbackTwin]:
        clock = ManualClock()
        with LoopbackTwin(PowderPrepTwin(_bench(clock), instrument="dut"), clock=clock) as server:
            yield server


class TestPowderPrepParsers(ParserConformance):
    parsers = (parse_ok, parse_ok_number, parse_status, parse_identity)
    valid_answers = ("OK", "OK 3", "OK 163.2", "STAT 2,3,1054.1,MILLING", "GENERIC,POWDER-PREP-1,P1,1.0", "ERR 3")


def test_a_recipe_is_weighed_for_the_targets_cations() -> None:
    masses = recipe_masses("Y2O3+BaCO3+CuO", "YBa2Cu3O6.5", 1.0)
    # 0.5 mmol Y2O3, 2 mmol BaCO3, 3 mmol CuO, computed by hand from the molar masses.
    assert masses == pytest.approx({"Y2O3": 0.5 * 225.809, "BaCO3": 2 * 197.335, "CuO": 3 * 79.545}, rel=1e-4)


@pytest.mark.parametrize(
    ("precursors", "message"),
    [
        ("Y2O3+CuO", "none of them has Ba"),
        ("Y2O3+BaCO3+CuO+Cu2O", "more than one way"),
        ("Y2O3++CuO", "not formulas joined by"),
        ("Y2O3+BaCO3+CuO+Fe2O3", "unknown element Fe"),
    ],
)
def test_a_recipe_that_cannot_give_the_target_is_refused_by_name(precursors: str, message: str) -> None:
    with pytest.raises(InvalidAction, match=rf"^prepare\.precursors: .*{message}"):
        recipe_masses(precursors, "YBa2Cu3O6.5", 1.0)


@pytest.fixture
def rig() -> Iterator[tuple[Bench, PowderPrepTwin, PowderPrepStation]]:
    clock = ManualClock()
    bench = Bench(time_scale=1.0, seed=3, wall_clock=clock)
    twin = PowderPrepTwin(bench)
    with LoopbackTwin(twin, name="prep", clock=clock) as server:
        driver = PowderPrepStation(
            server.url, instrument="prep", settings={"timeout_s": 0.5}, opener=server.open_link, clock=clock
        )
        driver.connect()
        yield bench, twin, driver
        driver.close()


def test_the_vial_holds_what_was_dosed_milled(rig: tuple[Bench, PowderPrepTwin, PowderPrepStation]) -> None:
    bench, _, driver = rig
    vessel = bench.place("prep", "sample-1")
    started = bench.clock.now()
    result = driver.execute("prepare", {**RECIPE, "mill_min": 20})
    masses = recipe_masses(RECIPE["precursors"], RECIPE["target"], 1.0)
    assert set(vessel.powders_g) == set(masses)
    for name, mg in masses.items():
        assert vessel.powders_g[name] * 1000 == pytest.approx(mg, rel=0.02)
    assert result["dosed_mg"] == pytest.approx(sum(vessel.powders_g.values()) * 1000, abs=0.2)
    assert 0 < result["worst_dose_error_pct"] < 2
    assert vessel.homogeneity == pytest.approx(1 - 0.9 * 2.718281828 ** (-4), rel=1e-6)  # 20 min at tau 5 min
    assert bench.clock.now() - started >= 20 * 60  # the driver waited for the mill
    # A second sample starts from an empty vial.
    second = bench.place("prep", "sample-2")
    driver.execute("prepare", RECIPE)
    assert set(second.powders_g) == set(masses) and result["vial"] == 1


def test_without_a_vial_the_station_says_so(rig: tuple[Bench, PowderPrepTwin, PowderPrepStation]) -> None:
    _, _, driver = rig
    with pytest.raises(DeviceError, match="no vial"):
        driver.execute("prepare", RECIPE)
