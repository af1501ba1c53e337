"""A station on device twins: the protocol runs an experiment through four real protocols, measurements are the
sample's own, instruments are reserved, limits refuse before sending, and a bad station file is refused by name."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from instruments.clock import ManualClock
from instruments.conformance import link_options
from instruments.contract import Driver
from instruments.drivers.ika_namur import IkaNamurHotplate
from instruments.drivers.keithley2000 import Keithley2000
from instruments.drivers.mettler_sics import MettlerSicsBalance
from instruments.drivers.newera_pump import NewEraPump
from instruments.errors import LimitViolation
from instruments.station import ActionStep, Station, WaitStep
from orchestrator.campaign.spec import parse_spec
from orchestrator.errors import SpecError
from orchestrator.lab.build import build_lab
from orchestrator.lab.station import InstrumentFailure
from simulators.twins.bench import Bench
from simulators.twins.ika_namur import IkaNamurTwin
from simulators.twins.keithley2000 import Keithley2000Twin
from simulators.twins.loopback import LoopbackTwin
from simulators.twins.mettler_sics import MettlerSicsTwin
from simulators.twins.newera_pump import NewEraPumpTwin
from tests.instruments.station_specs import EXAMPLE, station_spec, station_yaml

POINT = {"volume": 2.0, "temperature": 100.0, "time": 20.0, "stirring": 400}


class Recorder:
    """A journal that keeps what the station writes, with the time it was written."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, detail: dict[str, Any]) -> None:
        with self._lock:
            self.entries.append((time.monotonic(), kind, detail))

    def sample(self) -> str:
        return next(detail["sample"] for _, kind, detail in self.entries if kind == "sample")

    def kinds(self) -> list[str]:
        return [kind for _, kind, _ in self.entries]


@pytest.fixture
def lab():
    built = build_lab(station_spec())
    yield built
    built.close()


def _true_yield(lab: Any, sample: str) -> float:
    vessel = lab.station.bench.vessels[sample]
    return 100 * vessel.p_mmol / 0.5  # percent of the 0.5 mmol of B each vial is charged with


def test_one_experiment_runs_every_step_and_measures_its_own_sample(lab) -> None:
    journal = Recorder()
    result = lab.run(POINT, "station_test:1", journal)
    assert journal.kinds()[:8] == ["connect-started", "connect-done"] * 4  # the first experiment connects
    sample = journal.sample()
    assert sample == "station_test:1/1"
    truth = _true_yield(lab, sample)
    assert result.values["yield"] == pytest.approx(truth, abs=1.0)
    assert 5 < truth < 95  # a real reaction happened, not a constant
    actions = [d for _, k, d in journal.entries if k == "action-started"]
    done = [d for _, k, d in journal.entries if k == "action-done"]
    assert len(actions) == len(done) == 9  # ten steps, one of them a wait
    for started, finished in zip(actions, done, strict=True):
        assert (started["instrument"], started["action"]) == (finished["instrument"], finished["action"])
        assert any(e["dir"] == "tx" for e in finished["transcript"])
    assert done[1]["args"] == {"volume_ml": 2.0, "rate_ml_min": 10}  # `{volume}` substituted, as a number
    vessel = lab.station.bench.vessels[sample]
    assert vessel.volume_ml == pytest.approx(4.0, abs=0.01)  # 2 mL charged + 2 mL dosed by the pump


def test_the_outcome_follows_the_chemistry(lab) -> None:
    cool = lab.run({**POINT, "temperature": 70.0, "time": 10.0}, "k:1").values["yield"]
    warm = lab.run({**POINT, "temperature": 100.0, "time": 10.0}, "k:2").values["yield"]
    assert warm > cool + 5


def test_a_retry_starts_from_a_fresh_sample(lab) -> None:
    first, second = Recorder(), Recorder()
    lab.run(POINT, "r:1", first)
    lab.run(POINT, "r:1", second)
    assert first.sample() == "r:1/1" and second.sample() == "r:1/2"
    assert lab.station.bench.vessels["r:1/2"].volume_ml == pytest.approx(4.0, abs=0.01)


def test_two_experiments_never_share_an_instrument_but_instruments_work_in_parallel(lab) -> None:
    journals = [Recorder() for _ in range(3)]
    threads = [
        threading.Thread(target=lab.run, args=({**POINT, "time": 5.0 + 5 * i}, f"p:{i}", journal))
        for i, journal in enumerate(journals)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # When each experiment used each instrument: from its first action there to the end of its last.
    uses: dict[str, list[tuple[float, float, int]]] = {}
    for owner, journal in enumerate(journals):
        assert "action-failed" not in journal.kinds()
        times: dict[str, list[float]] = {}
        for at, kind, detail in journal.entries:
            if kind in ("action-started", "action-done"):
                times.setdefault(detail["instrument"], []).append(at)
        for instrument, stamps in times.items():
            uses.setdefault(instrument, []).append((min(stamps), max(stamps), owner))
    for instrument, spans in uses.items():
        spans.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(spans):
            assert end <= start, f"{instrument} used by experiments {a} and {b} at once"
    overlap = any(p0 < h1 and h0 < p1 and a != b for p0, p1, a in uses["pump"] for h0, h1, b in uses["hotplate"])
    assert overlap, "the pump dosed one sample while the hotplate held another"


def test_a_limit_per_experiment_refuses_the_action_before_sending(tmp_path: Path) -> None:
    text = station_yaml().replace(
        '- {instrument: pump, action: dispense, args: {volume_ml: "{volume}", rate_ml_min: 10}}',
        '- {instrument: pump, action: dispense, args: {volume_ml: "{volume}", rate_ml_min: 10}}\n'
        "    - {instrument: pump, action: dispense, args: {volume_ml: 1.5, rate_ml_min: 10}}",
    )
    lab = build_lab(parse_spec(text, base_dir=EXAMPLE.parent))
    try:
        journal = Recorder()
        with pytest.raises(InstrumentFailure, match=r"pump\.limits\.volume_ml\.per_experiment") as caught:
            lab.run(POINT, "l:1", journal)
        assert caught.value.kind == "limit" and not caught.value.retryable
        failed = [d for _, k, d in journal.entries if k == "action-failed"]
        assert failed[0]["limit"] == "pump.limits.volume_ml.per_experiment"
        assert failed[0]["transcript"] == []  # nothing was sent
        assert "instrument-safe" in journal.kinds()  # the pump was brought to its safe state
        server = next(s for s in lab.station.servers if s.name == "pump")
        assert sum(r.endswith("RUN") for r in server.log) == 1  # only the first, allowed, dispense ran
    finally:
        lab.close()


def test_runtime_limits_are_checked_by_the_driver_too() -> None:
    lab = build_lab(station_spec())
    try:
        station = lab.station.start()
        with pytest.raises(LimitViolation, match=r"hotplate\.limits\.temperature_c\.max = 140"):
            station.drivers["hotplate"].execute("set_temperature", {"temperature_c": 150})
    finally:
        lab.close()


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("bounds: [60, 130]", "bounds: [60, 160]", "space[1]"),
        ("driver: ika-namur", "driver: ika-namur-x", "lab.instruments.hotplate.driver"),
        ("action: heat_off", "action: heat_of", "lab.protocol"),
        ("save: {mass_g: mass}", "save: {grams: mass}", "lab.protocol"),
        ('"{time}", unit: min', '"{duration}", unit: min', "lab.protocol[5]"),
        ('yield: "100 *', "yield: \"__import__('os') or 100 *", "lab.outcomes.yield"),
        ("instrument: balance, action: weigh", "instrument: scale, action: weigh", "lab.protocol[8].instrument"),
        ("  twins: {time_scale: 600, seed: 0}", "", "lab.instruments.pump.port"),
        ("rate_ml_min: {max: 20}", "rate_ml_min: {max: 20, min: 30}", "lab.instruments.pump.limits.rate_ml_min"),
        ("faults: {rate: 0.0}", "faults: {rate: 2}", "lab.twins.faults.rate"),
    ],
)
def test_a_bad_station_file_is_refused_naming_the_field(old: str, new: str, field: str) -> None:
    text = station_yaml(time_scale=600) if "twins" not in old else EXAMPLE.read_text(encoding="utf-8")
    if "faults" in old:
        text = station_yaml()
    assert old in text, old
    with pytest.raises(SpecError) as caught:
        build_lab(parse_spec(text.replace(old, new), base_dir=EXAMPLE.parent))
    assert caught.value.field.startswith(field), str(caught.value)


def test_a_station_on_in_process_twins_and_one_manual_clock_waits_for_nothing() -> None:
    """The fast set-up for a station: twins on loopback links, drivers, bench and station on one manual clock. The
    20-minute hold and the heating ramp pass on that clock, and the measured yield is still the vial's own."""
    clock = ManualClock()
    bench = Bench(time_scale=600, seed=0, wall_clock=clock)
    twins = {
        "pump": (NewEraPumpTwin(bench, instrument="pump"), NewEraPump),
        "hotplate": (IkaNamurTwin(bench, instrument="hotplate"), IkaNamurHotplate),
        "balance": (MettlerSicsTwin(bench, instrument="balance"), MettlerSicsBalance),
        "photometer": (Keithley2000Twin(bench, instrument="photometer"), Keithley2000),
    }
    drivers: dict[str, Driver] = {}
    for name, (twin, driver_class) in twins.items():
        served = LoopbackTwin(twin, name=name, clock=clock)
        drivers[name] = driver_class(served.url, instrument=name, **link_options(served))
    protocol = [
        ActionStep("pump", "dispense", {"volume_ml": "{volume}", "rate_ml_min": 10}),
        ActionStep("hotplate", "set_speed", {"speed_rpm": "{stirring}"}),
        ActionStep("hotplate", "set_temperature", {"temperature_c": "{temperature}"}),
        ActionStep("hotplate", "wait_for_temperature", {"temperature_c": "{temperature}", "tolerance_c": 2}),
        WaitStep("{time}", "min"),
        ActionStep("hotplate", "heat_off"),
        ActionStep("balance", "weigh", save={"mass_g": "mass"}),
        ActionStep("photometer", "measure_voltage", {"samples": 3}, save={"voltage_v": "signal"}),
    ]
    # The example station's formula: absorbance from the signal, product from the volume, on 0.5 mmol of B.
    outcomes = {"yield": "100 * log10(5.0 / (signal - 0.0005)) / 20 * (mass - 11.482) / 0.87 / 0.5"}
    station = Station(drivers, protocol, outcomes, on_arrive=bench.place, time_scale=600, clock=clock)
    station.connect()
    try:
        result = station.run(POINT, "fast:1")
    finally:
        station.close()
    # 22 -> 100 °C at 10 °C/min is about 8 simulated minutes, the hold 20: at 600x about 2.8 s on the clock.
    assert clock.now() >= 20 * 60 / 600 + 7 * 60 / 600
    vessel = bench.vessels["fast:1/1"]
    truth = 100 * vessel.p_mmol / 0.5
    assert 5 < truth < 95
    assert result["yield"] == pytest.approx(truth, abs=1.0)
