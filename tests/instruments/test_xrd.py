"""The generic powder-diffractometer driver against its twin: the conformance kit (pty and in-process), a scan's
timeline on the bench's clock, the pattern of the powder in the holder, and the parsers under random input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from instruments.arrays import ArrayData
from instruments.clock import ManualClock
from instruments.conformance import DriverConformance, ParserConformance
from instruments.drivers.xrd import (
    PowderDiffractometer,
    parse_counts,
    parse_data_header,
    parse_identity,
    parse_ok,
    parse_run,
    parse_scan,
    parse_status,
)
from instruments.errors import DeviceError, InstrumentTimeout
from simulators.twins.bench import Bench
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.server import TwinServer
from simulators.twins.xrd import XrdTwin

# A short coarse scan: 61 points of 0.01 s, so the kit's many runs take milliseconds at 10^4 x.
QUICK = {"start_deg": 20.0, "stop_deg": 50.0, "step_deg": 0.5, "seconds_per_step": 0.01, "timeout_min": 5}


class TestXrdConformance(DriverConformance):
    driver_class = PowderDiffractometer
    examples = [("measure_pattern", QUICK), ("read_scan", {})]  # noqa: RUF012 - the kit's declared ClassVar
    query_action = ("read_scan", {})
    moving_action = ("measure_pattern", QUICK)
    never_resent = ("RUN",)

    @pytest.fixture
    def twin(self) -> Iterator[TwinServer]:
        with TwinServer(XrdTwin(Bench(time_scale=1e4, seed=1)), name="xrd") as server:
            server.start_pty()
            yield server


class TestXrdConformanceInProcess(TestXrdConformance):
    @pytest.fixture
    def twin(self) -> Iterator[LoopbackTwin]:
        clock = ManualClock()
        with LoopbackTwin(XrdTwin(Bench(time_scale=1e4, seed=1, wall_clock=clock)), clock=clock) as server:
            yield server


class TestXrdParsers(ParserConformance):
    parsers = (parse_ok, parse_run, parse_status, parse_scan, parse_data_header, parse_counts, parse_identity)
    valid_answers = (
        "OK",
        "OK 3",
        "STAT SCANNING,3,1200",
        "SCAN 10.0000,80.0000,0.0200,0.5000",
        "DATA 3501,10.0000,0.0200",
        "120,118,131,2044,125,119,117,121,123,120",
        "GENERIC,XRD-1,XRD0001,1.0",
        "ERR 3",
    )


@pytest.fixture
def rig() -> Iterator[tuple[Bench, XrdTwin, PowderDiffractometer]]:
    clock = ManualClock()
    bench = Bench(time_scale=1.0, seed=3, wall_clock=clock)  # the real time scale, on a manual clock: no wall time
    twin = XrdTwin(bench)
    with LoopbackTwin(twin, name="xrd", clock=clock) as server:
        driver = PowderDiffractometer(
            server.url, instrument="xrd", settings={"timeout_s": 0.5}, opener=server.open_link, clock=clock
        )
        driver.connect()
        yield bench, twin, driver
        driver.close()


def _fired(bench: Bench, phases: dict[str, Any]) -> None:
    vessel = bench.place("xrd", "sample-1")
    vessel.phases = dict(phases)


def test_a_pattern_is_an_array_of_the_powder_in_the_holder(rig: tuple[Bench, XrdTwin, PowderDiffractometer]) -> None:
    bench, _, driver = rig
    _fired(bench, {"YBa2Cu3O6.5": 0.7, "CuO": 0.3})
    started = bench.clock.now()
    result = driver.execute(
        "measure_pattern", {"start_deg": 10, "stop_deg": 80, "step_deg": 0.02, "seconds_per_step": 0.5}
    )
    pattern = result["pattern"]
    assert isinstance(pattern, ArrayData)
    assert pattern.points == 3501 and pattern.x[0] == 10.0 and pattern.x[-1] == pytest.approx(80.0)
    assert pattern.x_axis.unit == "deg" and pattern.y_axis.unit == "counts"
    # 3501 steps of half a second pass on the bench's clock, not on the wall's.
    assert bench.clock.now() - started == pytest.approx(3501 * 0.5, rel=0.01)
    x, y = np.asarray(pattern.x), np.asarray(pattern.y)
    assert abs(x[int(np.argmax(y))] - 32.5) < 0.1  # the target's strongest line
    cuo = y[int(np.argmin(abs(x - 35.5)))]
    assert cuo > 5 * np.median(y)  # the tenorite shows too
    assert result["peak_counts"] == y.max() and result["scan"] == 1


def test_counting_longer_counts_more_and_an_empty_holder_is_background(
    rig: tuple[Bench, XrdTwin, PowderDiffractometer],
) -> None:
    bench, _, driver = rig
    empty = driver.execute("measure_pattern", {"start_deg": 30, "stop_deg": 40, "step_deg": 0.05})["pattern"]
    assert max(empty.y) < 200  # no peaks: the background's floor and its low-angle tail
    _fired(bench, {"CuO": 1.0})
    short = driver.execute(
        "measure_pattern", {"start_deg": 30, "stop_deg": 40, "step_deg": 0.05, "seconds_per_step": 0.25}
    )
    long = driver.execute(
        "measure_pattern", {"start_deg": 30, "stop_deg": 40, "step_deg": 0.05, "seconds_per_step": 1.0}
    )
    assert long["peak_counts"] / short["peak_counts"] == pytest.approx(4.0, rel=0.15)


def test_an_unfired_powder_diffracts_as_its_precursors(rig: tuple[Bench, XrdTwin, PowderDiffractometer]) -> None:
    bench, _, driver = rig
    bench.place("xrd", "sample-2").powders_g = {"Y2O3": 1.0}
    pattern = driver.execute("measure_pattern", {"start_deg": 20, "stop_deg": 40, "step_deg": 0.02})["pattern"]
    assert abs(pattern.x[int(np.argmax(pattern.y))] - 29.2) < 0.1  # bixbyite's (222)


def test_a_stopped_scan_is_a_device_error_and_a_slow_one_times_out(
    rig: tuple[Bench, XrdTwin, PowderDiffractometer],
) -> None:
    _, twin, driver = rig
    with pytest.raises(InstrumentTimeout, match="not done within 1 min"):
        driver.execute("measure_pattern", {"start_deg": 10, "stop_deg": 80, "step_deg": 0.02, "timeout_min": 1})
    driver.abort()
    assert twin.state() == "ABORTED"
    with pytest.raises(DeviceError, match="stop_deg 10 is not after start_deg 20"):
        driver.execute("measure_pattern", {"start_deg": 20, "stop_deg": 10})
