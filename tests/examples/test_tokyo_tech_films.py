"""The Tokyo Tech films template: the surrogate's stated optimum, and a few cycles of the campaign through the real
CLI on the twins (sputter controller -> four-point probe on the Keithley 2000), checked from the database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from sqlalchemy import select

from orchestrator.store.database import open_database
from orchestrator.store.models import Event, Experiment, Measurement
from simulators.templates import tokyo
from tests.orchestrator.cli.helpers import invoke

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "tokyo_tech_films"
NAMES = list(tokyo.BOUNDS)


def _constraints_hold(point: dict[str, float]) -> bool:
    return tokyo.feasible(point)


def test_the_stated_optimum_is_feasible_and_nothing_found_beats_it() -> None:
    assert tokyo.feasible(tokyo.KNOWN_OPTIMUM)
    assert tokyo.log10_resistivity(**tokyo.KNOWN_OPTIMUM) == pytest.approx(tokyo.KNOWN_OPTIMUM_LOG10_RHO, abs=1e-3)
    heater = tokyo.KNOWN_OPTIMUM["substrate_c"] + 0.5 * tokyo.KNOWN_OPTIMUM["power_w"]
    assert heater == pytest.approx(450, abs=0.1), "the heater constraint is active at the optimum"
    rng = np.random.default_rng(0)
    constraints = [
        {"type": "ineq", "fun": lambda x, c=c, r=r: r - sum(c[n] * x[NAMES.index(n)] for n in c)}
        for c, r in tokyo.CONSTRAINTS
    ]
    for _ in range(25):
        start = [rng.uniform(*tokyo.BOUNDS[n]) for n in NAMES]
        found = minimize(
            lambda x: tokyo.log10_resistivity(*x),
            start,
            method="SLSQP",
            bounds=[tokyo.BOUNDS[n] for n in NAMES],
            constraints=constraints,
        )
        if tokyo.feasible(dict(zip(NAMES, found.x, strict=True))):
            assert found.fun >= tokyo.KNOWN_OPTIMUM_LOG10_RHO - 1e-3


def test_every_feasible_film_reads_within_the_meters_range() -> None:
    """The probe never overflows on a film the space can grow: 100 MOhm range, 120 % over-range."""
    rng = np.random.default_rng(1)
    readings = []
    for _ in range(4000):
        point = {n: rng.uniform(*tokyo.BOUNDS[n]) for n in NAMES}
        if tokyo.feasible(point):
            readings.append(tokyo.film(**point, scatter=(3.0, -3.0)).four_point_ohm)
    assert len(readings) > 1000
    assert min(readings) > 1 and max(readings) < 1.2e8


@pytest.mark.slow
def test_a_few_cycles_through_the_cli_on_the_twins(tmp_path: Path) -> None:
    text = (TEMPLATE / "campaign.yaml").read_text()
    assert "experiments: 24" in text and "time_scale: 3600" in text
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(
        text.replace("experiments: 24", "experiments: 3").replace("time_scale: 3600", "time_scale: 36000")
    )
    db_url = f"sqlite:///{tmp_path / 't.db'}"
    result = invoke("run", str(campaign), "--db", db_url, "--engine", "inline", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "budget of 3 experiments spent" in result.stdout

    db = open_database(db_url)
    with db.session() as session:
        experiments = session.scalars(select(Experiment).order_by(Experiment.seq)).all()
        measured = {m.experiment_id: m.value for m in session.scalars(select(Measurement))}
        events = session.scalars(select(Event).where(Event.entity == "experiment").order_by(Event.id)).all()
        assert [e.state for e in experiments] == ["completed"] * 3
        for experiment in experiments:
            point = {n: float(experiment.parameters[n]) for n in NAMES}
            assert _constraints_hold(point), point
            # the twin's film, measured through the probe and the monitor: the surrogate's value within its scatter
            value = measured[experiment.id]
            assert -3.2 < value < 2.0
            assert value == pytest.approx(tokyo.log10_resistivity(**point), abs=0.15)
        details = [(e.entity_id or 0, e.kind, e.detail or {}) for e in events]
        done = [(x, d["instrument"], d["action"]) for x, kind, d in details if kind == "action-done"]
        for experiment in experiments:
            assert [(i, a) for x, i, a in done if x == experiment.id] == [
                ("sputter", "load_recipe"),
                ("sputter", "start_run"),
                ("sputter", "wait_until_done"),
                ("probe", "configure_resistance_4w"),
                ("probe", "measure_resistance_4w"),
            ]
        sent = [
            entry["data"]
            for _, kind, detail in details
            if kind == "action-done"
            for entry in detail["transcript"]
            if entry["dir"] == "tx"
        ]
        assert sum(line == "RUN" for line in sent) == 3, "one run per sample, never re-sent"
        assert sent.count(":CONF:FRES") == 3 and ":SENS:FRES:RANG:AUTO ON" in sent
        # One sample at a time: each experiment's actions end before the next one's begin.
        order = [x for x, kind, _ in details if kind == "action-started"]
        assert order == sorted(order)
