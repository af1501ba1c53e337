"""The ASTRAL template: the surrogate's stated optimum, a space past the furnace's limit refused in one line, and a
few cycles of the campaign through the real CLI on the twins (balance with its dosing head, mixer, furnace on Modbus
RTU, diffractometer), checked from the database and the journal of instrument actions."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from orchestrator.store.database import open_database
from orchestrator.store.models import Event, Experiment, Measurement
from simulators.templates import astral
from tests.orchestrator.cli.helpers import invoke, one_error

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "astral_synthesis"
NAMES = list(astral.BOUNDS)


def test_the_stated_optimum_is_in_the_space_and_no_search_beats_it() -> None:
    assert astral.in_bounds(astral.KNOWN_OPTIMUM)
    best = astral.target_fraction(**astral.KNOWN_OPTIMUM)
    assert best == pytest.approx(astral.KNOWN_OPTIMUM_FRACTION, abs=1e-4)
    grid = [np.linspace(*astral.BOUNDS[name], n) for name, n in zip(NAMES, (4, 2, 2, 2), strict=True)]
    assert max(astral.target_fraction(*point) for point in itertools.product(*grid)) <= best + 1e-9
    # A corner optimum: a step inwards along any parameter is worse (each is a bound the optimum presses on).
    for name, step in {"firing_c": -10.0, "dwell_h": -0.5, "ramp_c_per_min": 0.5, "mix_rpm": -100.0}.items():
        assert astral.target_fraction(**{**astral.KNOWN_OPTIMUM, name: astral.KNOWN_OPTIMUM[name] + step}) < best
    # Two modes in temperature: the trap between them (the same program at 870 C is worse than at 740 and 1000).
    program = {"dwell_h": 12.0, "ramp_c_per_min": 1.0, "mix_rpm": 2000.0}
    assert astral.target_fraction(870, **program) < min(astral.target_fraction(t, **program) for t in (740, 1000))


def test_a_space_past_the_furnaces_limit_is_refused_in_one_line(tmp_path: Path) -> None:
    text = (TEMPLATE / "campaign.yaml").read_text()
    assert "bounds: [700, 1000]" in text
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(text.replace("bounds: [700, 1000]", "bounds: [700, 1100]"))
    result = invoke("run", str(campaign), "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    line = one_error(result, "lab.instruments.furnace.limits.temperature_c.max = 1000")
    assert "'firing_c' reaches 1100" in line
    assert not result.stdout.strip()


@pytest.mark.slow
def test_a_few_cycles_through_the_cli_on_the_twins(tmp_path: Path) -> None:
    text = (TEMPLATE / "campaign.yaml").read_text()
    assert "experiments: 30" in text and "time_scale: 14400" in text
    campaign = tmp_path / "campaign.yaml"
    # At the template's own time scale: faster, the driver's polling (wall time) would add more unplanned hold.
    campaign.write_text(text.replace("experiments: 30", "experiments: 3"))
    db_url = f"sqlite:///{tmp_path / 'x.db'}"
    result = invoke("run", str(campaign), "--db", db_url, "--engine", "inline", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "budget of 3 experiments spent" in result.stdout

    db = open_database(db_url)
    with db.session() as session:
        experiments = session.scalars(select(Experiment).order_by(Experiment.seq)).all()
        measured = {m.experiment_id: m.value for m in session.scalars(select(Measurement))}
        events = session.scalars(select(Event).where(Event.entity == "experiment").order_by(Event.id)).all()
        assert [e.state for e in experiments] == ["completed"] * 3
        details = [(e.entity_id or 0, e.kind, e.detail or {}) for e in events]
        for experiment in experiments:
            point = {name: float(experiment.parameters[name]) for name in NAMES}
            assert astral.in_bounds(point)
            mine = [(kind, d) for x, kind, d in details if x == experiment.id]
            done = [(d["instrument"], d["action"]) for kind, d in mine if kind == "action-done"]
            assert done == [
                ("balance", "tare"),
                ("balance", "weigh"),
                ("mixer", "set_speed"),
                ("mixer", "stop"),
                ("furnace", "set_ramp_rate"),
                ("furnace", "set_temperature"),
                ("furnace", "wait_for_temperature"),
                ("furnace", "standby"),
                ("furnace", "wait_for_temperature"),
                ("xrd", "measure_pattern"),
            ]
            results = [d["result"] for kind, d in mine if kind == "action-done"]
            # The charge the dosing head put in the tared crucible: the recipe within its scatter.
            assert results[1]["mass_g"] == pytest.approx(sum(astral.RECIPE.values()), rel=0.02)
            # At temperature before the dwell, and below 200 C before the crucible left the furnace.
            assert results[6]["temperature_c"] == pytest.approx(point["firing_c"], abs=5)
            assert results[8]["temperature_c"] <= 200
            waits = [d["seconds"] for kind, d in mine if kind == "wait"]
            assert waits == pytest.approx([300.0, point["dwell_h"] * 3600])
            (analysis,) = [d for kind, d in mine if kind == "analysis-done"]
            assert analysis["analyse"] == "xrd_phase_fractions" and analysis["result"]["r_wp"] < 0.2
            # What the diffractometer saw followed from the weighing, the mixing and the furnace's own profile: the
            # surrogate's closed form within the crucible's lag, the polling and the pattern's counting noise.
            expected = 100 * astral.target_fraction(**point)
            assert measured[experiment.id] == pytest.approx(expected, abs=4.0), point
            assert measured[experiment.id] == pytest.approx(100 * analysis["result"]["YBa2Cu3O6_5"])
        sent = {
            entry["data"]
            for _, kind, detail in details
            if kind == "action-done" and detail["instrument"] == "furnace"
            for entry in detail["transcript"]
            if entry["dir"] == "tx"
        }
        # Real Modbus RTU frames went to the furnace: function 06 writes of TG.SP (register 2) and IM (199).
        assert any(frame.startswith("01 06 00 02 ") for frame in sent)
        assert any(frame.startswith("01 06 00 C7 00 01 ") for frame in sent)  # standby
        # One crucible at a time: each experiment's actions end before the next one's begin.
        order = [x for x, kind, _ in details if kind == "action-started"]
        assert order == sorted(order)
