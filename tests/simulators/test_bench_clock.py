"""The bench's clock: simulated seconds running `time_scale` times its wall clock, which a test can hand in."""

from __future__ import annotations

import pytest

from instruments.clock import ManualClock
from simulators.twins.bench import Bench, ScaledClock


def test_simulated_time_runs_time_scale_times_the_wall_clock() -> None:
    wall = ManualClock(start=100.0)
    clock = ScaledClock(600, wall)
    assert clock.now() == 0.0  # counted from when the clock was made
    wall.advance(0.5)
    assert clock.now() == pytest.approx(300.0)
    clock.sleep(60.0)  # a minute of simulated time is a tenth of a second of wall time
    assert wall.now() == pytest.approx(100.6)
    assert clock.now() == pytest.approx(360.0)


def test_a_bench_on_a_manual_wall_clock_only_moves_when_told() -> None:
    wall = ManualClock()
    bench = Bench(time_scale=60, wall_clock=wall)
    assert bench.clock.now() == 0.0
    bench.sleep(120.0)  # two simulated minutes
    assert wall.now() == pytest.approx(2.0)
    assert bench.clock.now() == pytest.approx(120.0)


def test_a_vessel_reacts_over_the_time_the_bench_lets_pass() -> None:
    wall = ManualClock()
    bench = Bench(time_scale=1, wall_clock=wall)
    vessel = bench.place("hotplate", "vial")
    vessel.dose(1.0)
    vessel.react(temperature_c=80.0, stir_rpm=600.0, seconds=0.0)
    assert vessel.p_mmol == 0.0  # no time, no product
    vessel.react(temperature_c=80.0, stir_rpm=600.0, seconds=600.0)
    assert 0.0 < vessel.p_mmol <= 0.5  # some product, never more than the 0.5 mmol of B charged


def test_time_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        ScaledClock(0)
    with pytest.raises(ValueError, match="time_scale"):
        Bench(time_scale=-1)
