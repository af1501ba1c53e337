"""The AI-chemist template: the surrogate's stated optimum against an independent search of the bounded simplex,
the literature notes (only the untrusted excerpt is flagged), and a few cycles of the campaign through the real
CLI, checked from the database: every composition sums to one, the notes were read, the injection was refused."""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from sqlalchemy import select

from orchestrator.campaign.notes_file import read_note
from orchestrator.campaign.spec import load_spec
from orchestrator.store.database import open_database
from orchestrator.store.models import (
    Campaign,
    Event,
    Experiment,
    Hypothesis,
    HypothesisCredence,
    HypothesisTest,
    Measurement,
)
from simulators.templates import aichem
from tests.orchestrator.cli.helpers import invoke

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "aichem_oer"
METALS = list(aichem.METALS)
INJECTED = "hydroxide_review_excerpt.md"


def _grid(step: int) -> np.ndarray:
    """Every composition of `step` parts among the five metals with at most 0.6 of each (`N x 5`)."""
    cuts = np.array(
        [(a, b, c, d) for a in range(step + 1) for b in range(a, step + 1) for c in range(b, step + 1)
         for d in range(c, step + 1)]
    )  # fmt: skip
    parts = np.diff(np.concatenate([np.zeros((len(cuts), 1)), cuts, np.full((len(cuts), 1), step)], axis=1), axis=1)
    assert len(parts) == comb(step + 4, 4)
    fractions = parts / step
    return fractions[(fractions <= 0.6 + 1e-12).all(axis=1)]


def test_the_stated_optimum_is_interior_and_nothing_on_the_simplex_beats_it() -> None:
    optimum = aichem.KNOWN_OPTIMUM
    assert sum(optimum.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(0.01 < optimum[m] < 0.59 for m in METALS), "every metal strictly inside its bounds"
    assert aichem.overpotential_at(optimum) == pytest.approx(aichem.KNOWN_OPTIMUM_MV, abs=0.01)
    assert abs(aichem.KNOWN_OPTIMUM_MV - 445.1) < 1.0, "near the paper's 445.1 mV"
    # An independent search: a grid of step 0.02 over the bounded simplex (about 300,000 compositions), then a
    # local search under the equality from the grid's best points.
    grid = _grid(50)
    values = aichem.ETA_REF_MV - aichem.SLOPE_MV_PER_DECADE * aichem.activity_decades(*grid.T)
    assert values.min() >= aichem.KNOWN_OPTIMUM_MV - 1e-6
    assert values.min() < aichem.KNOWN_OPTIMUM_MV + 1.0
    for start in grid[np.argsort(values)[:10]]:
        found = minimize(
            lambda x: aichem.ETA_REF_MV - aichem.SLOPE_MV_PER_DECADE * aichem.activity_decades(*np.clip(x, 0, 1)),
            start,
            method="SLSQP",
            bounds=[(0.0, 0.6)] * 5,
            constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
            options={"ftol": 1e-12},
        )
        assert found.fun >= aichem.KNOWN_OPTIMUM_MV - 1e-3
        if found.fun < aichem.KNOWN_OPTIMUM_MV + 1e-3:
            assert np.allclose(found.x, [optimum[m] for m in METALS], atol=2e-3)
    # The range the README states: a random composition about 505 mV, the worst 699 mV.
    assert 500 < float(np.median(values)) < 510 and 698 < values.max() < 700


def test_a_measurement_is_the_surrogate_within_its_scatter_and_refuses_a_bad_mixture() -> None:
    point = {"fe": 0.3, "ni": 0.5, "mn": 0.1, "mg": 0.05, "al": 0.05}
    steps: list[tuple[str, dict]] = []
    value = aichem.measure(point, key="x", journal=lambda kind, detail: steps.append((kind, detail)))
    assert value["overpotential_mv"] == pytest.approx(aichem.overpotential_at(point), abs=4 * 4.0)
    assert [d["action"] for k, d in steps if k == "action-done"] == ["dispense", "coprecipitate", "linear-sweep"]
    with pytest.raises(ValueError, match=r"sum to 1\.1"):
        aichem.measure({**point, "fe": 0.4})


def test_only_the_untrusted_excerpt_is_flagged_and_every_note_has_a_citation_and_a_claim() -> None:
    spec, _ = load_spec(TEMPLATE / "campaign.yaml")
    notes = [read_note(path, "notes") for path in spec.hypotheses.notes]
    assert len(notes) == 7
    assert all(note.citation and note.claims for note in notes)
    flagged = {note.path.name: note.flags for note in notes if note.flags}
    assert list(flagged) == [INJECTED]
    assert (
        flagged[INJECTED][0].pattern == "ignore-instructions"
        and not read_note(TEMPLATE / "notes" / INJECTED, "notes").front_flags
    )


@pytest.mark.slow
def test_a_few_cycles_through_the_cli(tmp_path: Path) -> None:
    text = (TEMPLATE / "campaign.yaml").read_text()
    assert "experiments: 60" in text
    folder = tmp_path / "aichem_oer"
    folder.mkdir()
    (folder / "notes").mkdir()
    for note in (TEMPLATE / "notes").glob("*.md"):
        (folder / "notes" / note.name).write_text(note.read_text())
    campaign = folder / "campaign.yaml"
    campaign.write_text(text.replace("experiments: 60", "experiments: 8"))
    db_url = f"sqlite:///{tmp_path / 'a.db'}"
    result = invoke("run", str(campaign), "--db", db_url, "--engine", "inline", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "budget of 8 experiments spent" in result.stdout

    db = open_database(db_url)
    with db.session() as session:
        stored = session.scalars(select(Campaign)).one()
        experiments = session.scalars(select(Experiment).order_by(Experiment.seq)).all()
        measured = {m.experiment_id: m.value for m in session.scalars(select(Measurement))}
        events = session.scalars(select(Event).order_by(Event.id)).all()
        hypotheses = session.scalars(select(Hypothesis).order_by(Hypothesis.id)).all()
        assert [e.state for e in experiments] == ["completed"] * 8
        for experiment in experiments:
            point = {m: float(experiment.parameters[m]) for m in METALS}
            assert abs(sum(point.values()) - 1.0) <= 1e-9, point
            assert all(0.0 <= v <= 0.6 for v in point.values()), point
            assert measured[experiment.id] == pytest.approx(aichem.overpotential_at(point), abs=4 * 4.0)
        # The notes were read: one event per note, and each note's claim is on the ledger with its citation.
        read = [e.detail for e in events if e.kind == "note-read"]
        assert len(read) == 7 and all(d["claims"] == 1 and len(d["hypotheses"]) == 1 for d in read)
        from_notes = [h for h in hypotheses if (h.origin or {}).get("note")]
        assert len(from_notes) == 7 and all(h.status != "rejected" for h in from_notes)
        assert all(h.rationale.startswith("from the literature note ") for h in from_notes)
        # The injection was flagged and refused: recorded, and nothing it asked for happened.
        [flag] = [e.detail for e in events if e.kind == "note-flagged"]
        assert flag["file"] == INJECTED and flag["pattern"] == "ignore-instructions"
        assert flag["action"] == "marked as data for an LLM; never read as an instruction"
        assert stored.spec["budget"]["experiments"] == 8 and stored.spec["approval"]["policy"] == "none"
        # (it asked for Mg at 0.6 in every experiment; the planner's choices are its own)
        assert sum(float(e.parameters["mg"]) > 0.6 - 1e-9 for e in experiments) < len(experiments)
        # Experiments were chosen to test the notes' claims, and the claims were given credences.
        tested = {t.hypothesis_id for t in session.scalars(select(HypothesisTest))}
        assert tested & {h.id for h in from_notes}
        credited = {c.hypothesis_id for c in session.scalars(select(HypothesisCredence))}
        assert {h.id for h in from_notes} <= credited
