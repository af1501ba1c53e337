"""The generic sputter-controller driver against its twin: the conformance kit (pty and in-process), a run's
timeline on the bench's clock, the film it leaves for the four-point probe, and the parsers under random input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from instruments.clock import ManualClock
from instruments.conformance import DriverConformance, ParserConformance, link_options
from instruments.drivers.sputter import (
    SputterController,
    parse_identity,
    parse_ok,
    parse_recipe,
    parse_run,
    parse_status,
)
from instruments.errors import DeviceError, InstrumentTimeout
from simulators.templates import tokyo
from simulators.twins.bench import Bench
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.server import TwinServer
from simulators.twins.sputter import SputterTwin

RECIPE = {"ar_sccm": 24, "o2_sccm": 1.4, "power_w": 148, "substrate_c": 376, "time_min": 60}


class TestSputterConformance(DriverConformance):
    driver_class = SputterController
    examples = [  # noqa: RUF012 - the kit's declared ClassVar
        ("load_recipe", {"ar_sccm": 20, "o2_sccm": 1, "power_w": 100, "substrate_c": 100, "time_min": 1}),
        ("start_run", {}),
        ("wait_until_done", {"timeout_min": 5}),
        ("read_run", {}),
    ]
    query_action = ("read_run", {})
    moving_action = ("start_run", {})
    never_resent = ("RUN",)

    @pytest.fixture
    def twin(self) -> Iterator[TwinServer]:
        # 10^5 x: a run of minutes takes milliseconds of the wall clock.
        sputter = SputterTwin(Bench(time_scale=1e5, seed=1))
        sputter.recipe = (20.0, 1.0, 100.0, 100.0, 1.0)  # the moving action needs a recipe loaded
        with TwinServer(sputter, name="sputter") as server:
            server.start_pty()
            yield server


class TestSputterConformanceInProcess(TestSputterConformance):
    @pytest.fixture
    def twin(self) -> Iterator[LoopbackTwin]:
        clock = ManualClock()
        sputter = SputterTwin(Bench(time_scale=1e5, seed=1, wall_clock=clock))
        sputter.recipe = (20.0, 1.0, 100.0, 100.0, 1.0)
        with LoopbackTwin(sputter, clock=clock) as server:
            yield server


class TestSputterParsers(ParserConformance):
    parsers = (parse_ok, parse_run, parse_status, parse_recipe, parse_identity)
    valid_answers = (
        "OK",
        "OK 3",
        "STAT DEPOSITING,3,376.0,52.1",
        "RCP 24.00,1.40,148.00,376.00,60.00",
        "GENERIC,SPUTTER-1,SP0001,1.0",
        "ERR 3",
    )


@pytest.fixture
def rig() -> Iterator[tuple[Bench, SputterTwin, LoopbackTwin, SputterController]]:
    clock = ManualClock()
    bench = Bench(time_scale=1.0, seed=3, wall_clock=clock)  # the real time scale, on a manual clock: no wall time
    twin = SputterTwin(bench)
    with LoopbackTwin(twin, name="sputter", clock=clock) as server:
        driver = SputterController(
            server.url, instrument="sputter", settings={"timeout_s": 1.0}, **link_options(server)
        )
        driver.poll_s = 60.0  # type: ignore[misc]  # a poll a minute, as a lab would
        driver.connect()
        yield bench, twin, server, driver
        driver.close()


def test_a_run_heats_deposits_cools_and_leaves_the_film_for_the_probe(rig: tuple) -> None:
    bench, _, server, driver = rig
    substrate = bench.place("sputter", "s1")
    driver.execute("load_recipe", RECIPE)
    assert server.log[-2:] == ["RCP 24.00,1.40,148.00,376.00,60.00", "RCP?"]
    assert driver.execute("start_run", {}) == {"run": 1}
    start = bench.clock.now()
    assert driver.execute("read_run", {})["state"] == "HEATING"
    with pytest.raises(DeviceError, match="busy") as caught:
        driver.execute("start_run", {})
    assert caught.value.code == "3"
    done = driver.execute("wait_until_done", {"timeout_min": 600})
    hours = (bench.clock.now() - start) / 3600
    # 35 min to heat 22 -> 376 C at 10 C/min, 60 min of deposition, 63 min to cool to 60 C at 5 C/min
    assert 2.6 <= hours <= 2.7 + 1 / 60, hours
    assert done["run"] == 1 and done["substrate_c"] == 60.0
    expected = tokyo.film(24, 1.4, 148, 376, 60)
    assert done["thickness_nm"] == pytest.approx(expected.thickness_nm, rel=0.08)  # 2 % scatter, 4 sd
    assert substrate.resistance_ohm == pytest.approx(expected.four_point_ohm, rel=0.25)  # 5 % scatter, 4 sd
    rho = tokyo.FOUR_POINT_FACTOR * substrate.resistance_ohm * done["thickness_nm"] * 1e-7
    assert rho == pytest.approx(10**tokyo.KNOWN_OPTIMUM_LOG10_RHO, rel=0.25)


def test_stop_aborts_a_run_and_its_film_is_no_sample(rig: tuple) -> None:
    bench, twin, _, driver = rig
    substrate = bench.place("sputter", "s2")
    driver.execute("load_recipe", RECIPE)
    driver.execute("start_run", {})
    bench.clock.sleep(45 * 60)  # deposition under way
    assert driver.execute("read_run", {})["state"] == "DEPOSITING"
    driver.abort()
    assert twin.state() == "ABORTED" and substrate.resistance_ohm == float("inf")
    with pytest.raises(DeviceError, match="ABORTED"):
        driver.execute("wait_until_done", {"timeout_min": 10})


def test_a_run_past_its_timeout_is_a_timeout(rig: tuple) -> None:
    _, _, _, driver = rig
    driver.execute("load_recipe", RECIPE)
    driver.execute("start_run", {})
    with pytest.raises(InstrumentTimeout, match="not done within 30 min"):
        driver.execute("wait_until_done", {"timeout_min": 30})


def test_the_controller_refuses_what_it_cannot_do() -> None:
    twin = SputterTwin(Bench(seed=0))
    assert twin.handle("RUN") == ["ERR 4"] and twin.handle("RCP?") == ["ERR 4"]
    assert twin.handle("RCP 1,2,3") == ["ERR 2"] and twin.handle("RCP 1,2,3,4,x") == ["ERR 2"]
    assert twin.handle("RCP 200,0,100,100,10") == ["ERR 2"], "argon past the controller's range"
    assert twin.handle("FIRE") == ["ERR 1"] and twin.error_reply("RUN") == ["ERR 5"]
    assert twin.handle("RCP 20,1,100,100,10") == ["OK"] and twin.handle("RCP?") == [
        "RCP 20.00,1.00,100.00,100.00,10.00"
    ]
    assert twin.handle("STAT?") == ["STAT IDLE,0,22.0,0.0"]
