"""The IKA EUROSTAR mixer driver against its twin: the conformance kit over a pty and in-process, read-back of the
unanswered speed setting, and the powder it mixes (dosed on the balance twin's dosing head, then mixed)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from instruments.clock import ManualClock
from instruments.conformance import FAST_SETTINGS, DriverConformance, link_options
from instruments.drivers.ika_eurostar import IkaEurostarMixer
from instruments.drivers.mettler_sics import MettlerSicsBalance
from instruments.errors import DeviceError
from simulators.twins.bench import Bench
from simulators.twins.ika_eurostar import IkaEurostarTwin
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.mettler_sics import MettlerSicsTwin
from simulators.twins.server import TwinEndpoint, TwinServer
from tests.instruments.test_ika_namur import PTY_SETTINGS


def loopback(bench: Bench, **options: Any) -> LoopbackTwin:
    assert isinstance(bench.wall_clock, ManualClock)
    return LoopbackTwin(IkaEurostarTwin(bench, **options), name="mixer", clock=bench.wall_clock)


def connected(twin: TwinEndpoint) -> IkaEurostarMixer:
    driver = IkaEurostarMixer(twin.url, instrument="mixer", settings=FAST_SETTINGS, **link_options(twin))
    driver.connect()
    return driver


def mixer(server: TwinEndpoint) -> IkaEurostarTwin:
    assert isinstance(server.protocol, IkaEurostarTwin)
    return server.protocol


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def bench(clock: ManualClock) -> Bench:
    return Bench(time_scale=60, seed=3, wall_clock=clock)


@pytest.fixture
def twin(bench: Bench) -> Iterator[LoopbackTwin]:
    with loopback(bench) as server:
        yield server


@pytest.fixture
def driver(twin: LoopbackTwin) -> Iterator[IkaEurostarMixer]:
    driver = connected(twin)
    yield driver
    driver.close()


class TestIkaEurostarConformance(DriverConformance):
    driver_class = IkaEurostarMixer
    examples: ClassVar[list[tuple[str, dict[str, Any]]]] = [
        ("set_speed", {"speed_rpm": 500.0}),
        ("read_speed", {}),
        ("stop", {}),
    ]
    query_action = ("read_speed", {})
    moving_action = None
    never_resent = ()
    settings = PTY_SETTINGS

    @pytest.fixture
    def twin(self) -> Iterator[TwinServer]:
        with TwinServer(IkaEurostarTwin(Bench(time_scale=60, seed=1)), name="mixer") as server:
            server.start_pty()
            yield server


class TestIkaEurostarConformanceInProcess(TestIkaEurostarConformance):
    settings = FAST_SETTINGS

    @pytest.fixture
    def twin(self) -> Iterator[LoopbackTwin]:
        with loopback(Bench(time_scale=60, seed=1, wall_clock=ManualClock())) as server:
            yield server


def test_the_speed_is_set_read_back_and_the_motor_started(driver: IkaEurostarMixer, twin: LoopbackTwin) -> None:
    start = len(twin.log)
    driver.execute("set_speed", {"speed_rpm": 600.4})
    assert twin.log[start:] == ["OUT_SP_4 600", "IN_SP_4", "START_4", "START_4", "IN_SP_4"]
    assert (mixer(twin).speed_setpoint_rpm, mixer(twin).running) == (600.0, True)
    driver.execute("stop")
    assert not mixer(twin).running


def test_a_lost_setting_is_sent_again_and_a_refused_one_raises(driver: IkaEurostarMixer, twin: LoopbackTwin) -> None:
    twin.faults.script[:] = ["no_answer"]  # OUT_SP_4 lost on the line
    driver.execute("set_speed", {"speed_rpm": 400})
    assert [r for r in twin.log if r.startswith("OUT_SP_4")] == ["OUT_SP_4 400", "OUT_SP_4 400"]
    mixer(twin).max_rpm = 1300.0  # a EUROSTAR 100 control: 2000 rpm is outside its range, ignored silently
    with pytest.raises(DeviceError, match=r"setpoint 2000 was not taken: IN_SP_4 reads 400"):
        driver.execute("set_speed", {"speed_rpm": 2000})


def test_a_powder_dosed_on_the_balance_is_mixed_by_the_revolutions(clock: ManualClock) -> None:
    bench = Bench(time_scale=60, seed=4, wall_clock=clock)
    recipe = {"Y2O3": 0.5645, "BaO2": 3.3868, "CuO": 2.3864}
    balance_twin = MettlerSicsTwin(bench, dose=recipe, dose_sd=0.01)
    with (
        LoopbackTwin(balance_twin, name="balance", clock=clock) as scale,
        loopback(bench) as stirrer,
    ):
        balance = MettlerSicsBalance(scale.url, instrument="balance", settings=FAST_SETTINGS, **link_options(scale))
        balance.connect()
        vessel = bench.place("balance", "crucible")
        balance.execute("tare")
        dosed = balance.execute("weigh")["mass_g"]
        assert dosed == pytest.approx(sum(vessel.powders_g.values()), abs=2e-4)
        assert dosed == pytest.approx(sum(recipe.values()), rel=0.03) and dosed != sum(recipe.values())
        assert vessel.homogeneity == 0.1
        balance.execute("tare")  # a second tare of the same crucible doses nothing more
        assert balance.execute("weigh")["mass_g"] == pytest.approx(0, abs=2e-4)

        bench.place("mixer", "crucible")
        driver = connected(stirrer)
        driver.execute("set_speed", {"speed_rpm": 300})
        clock.advance(0.1)  # six seconds (and the driver's settling after START_4): part of the way
        bench.sync()  # the twins bring themselves up to now (they do when asked, and before every move)
        partly = vessel.homogeneity
        reachable_300 = 1 - 0.9 * math.exp(-300 / 600)
        assert 0.1 < partly < reachable_300 - 0.1
        clock.advance(10.0)  # ten minutes: as mixed as 300 rpm can make it
        bench.sync()
        assert vessel.homogeneity == pytest.approx(reachable_300, abs=1e-3)
        driver.execute("set_speed", {"speed_rpm": 1200})
        clock.advance(5.0)
        reading = driver.execute("read_speed")
        driver.execute("stop")
        clock.advance(1.0)
        bench.remove("mixer")
        assert reading["speed_rpm"] == 1200 and reading["torque_ncm"] > 2.0  # the powder's drag
        assert vessel.homogeneity == pytest.approx(1 - 0.9 * math.exp(-1200 / 600), abs=1e-3)  # and not unmixed
        driver.close()
        balance.close()
