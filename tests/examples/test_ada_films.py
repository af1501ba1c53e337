"""The Ada films template: the surrogate's stated optimum, what its films read on the instruments, and a few cycles
of the campaign through the real CLI on the twins (spectrometer, pump, hotplate, meter), checked from the database:
spectra stored as artifacts of each experiment, the analysis done on them, outcomes within the surrogate's scatter."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from sqlalchemy import select

from instruments.arrays import ArrayData
from orchestrator.store.artifacts import ArtifactStore
from orchestrator.store.database import open_database
from orchestrator.store.models import Artifact, Event, Experiment, Measurement
from simulators.templates import ada
from simulators.twins.bench import Bench
from tests.orchestrator.cli.helpers import invoke

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "ada_films"
NAMES = list(ada.BOUNDS)


def test_the_stated_optimum_is_inside_and_no_search_beats_it() -> None:
    assert ada.in_bounds(ada.KNOWN_OPTIMUM) and ada.KNOWN_OPTIMUM["dopant_ratio"] in ada.RATIOS
    value = ada.log10_pseudo_mobility(**ada.KNOWN_OPTIMUM)
    assert value == pytest.approx(ada.KNOWN_OPTIMUM_LOG10_PSEUDO_MOBILITY, abs=1e-3)
    # Interior in every parameter: the optimum is not pinned to a bound.
    for name, (low, high) in ada.BOUNDS.items():
        assert low < ada.KNOWN_OPTIMUM[name] < high, name
    # A grid over the whole space, then a bounded local search from the best points of each ratio.
    temperatures = np.linspace(*ada.BOUNDS["anneal_c"], 61)
    times = np.linspace(*ada.BOUNDS["anneal_min"], 57)
    for ratio in ada.RATIOS:
        grid = [(ada.log10_pseudo_mobility(ratio, t, m), t, m) for t in temperatures for m in times]
        assert max(grid)[0] <= ada.KNOWN_OPTIMUM_LOG10_PSEUDO_MOBILITY + 1e-3
        _, t0, m0 = max(grid)
        found = minimize(
            lambda x, r=ratio: -ada.log10_pseudo_mobility(r, x[0], x[1]),
            [t0, m0],
            method="L-BFGS-B",
            bounds=[ada.BOUNDS["anneal_c"], ada.BOUNDS["anneal_min"]],
        )
        assert -found.fun <= ada.KNOWN_OPTIMUM_LOG10_PSEUDO_MOBILITY + 1e-4


def test_pseudo_mobility_follows_the_mobility_not_the_doping_level_or_thickness() -> None:
    """G / A cancels the hole density and the thickness: two films of equal mobility and different ratio and
    thickness have the same pseudo-mobility."""
    thin = ada.Film(0.05, 120.0, 1e-4)
    thick = ada.Film(0.30, 200.0, 1e-4)
    assert thin.conductance_s < thick.conductance_s
    assert thin.log10_pseudo_mobility == pytest.approx(thick.log10_pseudo_mobility, abs=0.01)
    assert ada.Film(0.05, 120.0, 2e-4).log10_pseudo_mobility == pytest.approx(
        thin.log10_pseudo_mobility + math.log10(2), abs=1e-9
    )


def test_every_film_reads_within_the_meters_range_and_has_light_in_its_band() -> None:
    rng = np.random.default_rng(1)
    resistances, transmitted = [], []
    for _ in range(3000):
        ratio = float(rng.choice(ada.RATIOS))
        history = [(rng.uniform(*ada.BOUNDS["anneal_c"]), 60 * rng.uniform(*ada.BOUNDS["anneal_min"]))]
        for z in (-3.0, 3.0):
            film = ada.film(ratio, history, scatter=(z, z))
            resistances.append(film.resistance_ohm)
            transmitted.append(10 ** -float(film.absorbance(np.array([510.0]))[0]))
    assert min(resistances) > 1e3 and max(resistances) < 1.0e8  # 100 MOhm range, 120 % over-range
    assert min(transmitted) > 0.03  # the thickest, most doped film still passes 3 % at the band's top


def test_the_twins_read_the_film_a_bench_sample_carries() -> None:
    """Dopant dosed into the sample and its time on a heater make the film; before that it is a bare substrate."""
    bench = Bench(seed=0)
    vessel = bench.place("pump", "e1/1")
    wavelengths = np.array([385.0, 510.0, 700.0])
    assert not ada.film_absorbance(vessel, wavelengths).any() and ada.film_resistance_ohm(vessel) == math.inf
    vessel.dose(0.08)  # 0.08 mL of the 0.5 M stock into 0.5 mmol: r = 0.08
    assert ada.dopant_ratio_of(vessel) == pytest.approx(0.08)
    for _ in range(int(ada.KNOWN_OPTIMUM["anneal_min"] * 30)):
        vessel.react(ada.KNOWN_OPTIMUM["anneal_c"], 0.0, 2.0)
    # What reacted on the heater (the bench's A + B -> P) is still dopant and spiro-OMeTAD.
    assert ada.dopant_ratio_of(vessel) == pytest.approx(0.08)
    made = ada.film_on(vessel)
    assert made is not None
    # The sample's own scatter (5 % mobility, 3 % thickness), and the same film each time it is read.
    assert made.log10_pseudo_mobility == pytest.approx(ada.KNOWN_OPTIMUM_LOG10_PSEUDO_MOBILITY, abs=0.1)
    assert ada.film_resistance_ohm(vessel) == made.resistance_ohm == ada.film_resistance_ohm(vessel)
    assert ada.film_absorbance(vessel, wavelengths)[1] == pytest.approx(float(made.absorbance(wavelengths)[1]))


@pytest.mark.slow
def test_a_few_cycles_through_the_cli_on_the_twins(tmp_path: Path) -> None:
    text = (TEMPLATE / "campaign.yaml").read_text()
    assert "experiments: 30" in text and "time_scale: 120" in text
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(text.replace("experiments: 30", "experiments: 3").replace("time_scale: 120", "time_scale: 240"))
    db_url = f"sqlite:///{tmp_path / 't.db'}"
    result = invoke("run", str(campaign), "--db", db_url, "--engine", "inline", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "budget of 3 experiments spent" in result.stdout

    db = open_database(db_url)
    store = ArtifactStore(db.engine)
    with db.session() as session:
        experiments = session.scalars(select(Experiment).order_by(Experiment.seq)).all()
        measured = {m.experiment_id: m.value for m in session.scalars(select(Measurement))}
        events = session.scalars(select(Event).where(Event.entity == "experiment").order_by(Event.id)).all()
        artifacts = session.scalars(select(Artifact)).all()
        assert [e.state for e in experiments] == ["completed"] * 3
        for experiment in experiments:
            point = {n: float(experiment.parameters[n]) for n in NAMES}
            assert ada.in_bounds(point) and point["dopant_ratio"] in ada.RATIOS
            # The film, read through the spectrometer, the analysis and the meter: the surrogate's value within its
            # scatter (5 % in mobility: 0.02 decades, three of them 0.065), where the hotplate's ramps, its cooling
            # and the driver's polling add up to a minute at temperature to the nominal anneal.
            nominal = ada.log10_pseudo_mobility(**point)
            longer = ada.log10_pseudo_mobility(point["dopant_ratio"], point["anneal_c"], point["anneal_min"] + 1.0)
            assert min(nominal, longer) - 0.07 < measured[experiment.id] < max(nominal, longer) + 0.07, point

            mine = [e.detail or {} for e in events if e.entity_id == experiment.id]
            spectra = {
                d["saved"]["spectrum"]: d["result"]["spectrum"]
                for d in mine
                if d.get("saved", {}).get("spectrum") and d.get("action") == "acquire_spectrum"
            }
            assert set(spectra) == {"dark", "reference", "film"}
            for reference in spectra.values():
                # Stored once, by content hash, as a data product of this experiment; the event keeps a reference.
                assert set(reference) >= {"kind", "artifact", "points"} and reference["points"] == 313
                array = ArrayData.from_dict(store.get(reference["artifact"]))
                assert array.points == 313 and array.x_axis.unit == "nm"
                assert 349 < array.x[0] < 351 and 799 < array.x[-1] < 801
            analyses = [d for d in mine if "analyse" in d and "result" in d]
            assert [d["analyse"] for d in analyses] == ["mean_absorbance", "mean_absorbance"]
            assert analyses[0]["input"] == {"sample": "film", "reference": "reference", "dark": "dark"}
            film = ada.annealed(**point)
            assert analyses[0]["result"]["absorbance"] == pytest.approx(film.band_absorbance, rel=0.08, abs=0.005)
        kinds = [e.kind for e in events]
        assert kinds.count("analysis-done") == 6 and "analysis-failed" not in kinds
        assert len({a.sha256 for a in artifacts}) >= 9
