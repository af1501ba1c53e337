"""Related campaigns (`related:`): refused at start when they cannot be learnt from, naming the field, with the
database unchanged; a campaign that names one plans with its results, records which, and replays exactly; the
data hash covers them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from orchestrator.campaign import runs
from orchestrator.cycle.context import load_context, open_campaign
from orchestrator.cycle.loop import InlineStages, run_loop
from orchestrator.cycle.observations import data_hash, related_observations
from orchestrator.errors import SpecError
from orchestrator.records.decisions import DeductionState
from orchestrator.records.provenance import planning_data_hash
from orchestrator.review.archive import export_archive, import_archive
from orchestrator.review.replay import replay_campaign
from orchestrator.store.database import open_database
from orchestrator.store.models import Campaign, Decision, Event, Experiment, ExperimentState, Measurement
from orchestrator.store.queries import observations
from tests.campaigns import hartmann_spec, to_spec, write_spec
from tests.orchestrator.cli.helpers import invoke

BAYES = {"kind": "bayesian", "seed": 3, "num_restarts": 2, "raw_samples": 32, "mc_samples": 64}


def _earlier(**overrides: Any) -> dict[str, Any]:
    """A finished campaign over the Hartmann-6 space, of another noise draw: the related task."""
    return hartmann_spec(name="earlier", budget={"experiments": 8, "batch_size": 4}, lab={"seed": 7}, **overrides)


def _run(db: Any, data: dict[str, Any]) -> int:
    spec, text = to_spec(data)
    campaign_id, _ = open_campaign(db, spec, text)
    runs.claim(db, campaign_id)
    run_loop(load_context(db, campaign_id), InlineStages(load_context(db, campaign_id)))
    return campaign_id


def _counts(db: Any) -> tuple[int, int]:
    with db.session() as session:
        return session.scalar(select(func.count(Campaign.id))), session.scalar(select(func.count(Event.id)))


def test_a_campaign_cannot_name_itself_or_one_campaign_twice() -> None:
    with pytest.raises(SpecError, match=r"^related\[0\]\.campaign: 'h6' is this campaign"):
        to_spec(hartmann_spec(related=[{"campaign": "h6"}]))
    with pytest.raises(SpecError, match=r"^related\[1\]\.campaign: 'a' is named twice"):
        to_spec(hartmann_spec(related=[{"campaign": "a"}, {"campaign": "a"}]))


def test_a_missing_related_campaign_is_refused_at_start_and_nothing_is_written(sqlite_url: str) -> None:
    db = open_database(sqlite_url)
    _run(db, _earlier())
    before = _counts(db)
    spec, text = to_spec(hartmann_spec(related=[{"campaign": "earlier"}, {"campaign": "nowhere"}]))
    with pytest.raises(SpecError, match=r"^related\[1\]\.campaign: no campaign 'nowhere' in this database"):
        open_campaign(db, spec, text)
    assert _counts(db) == before


@pytest.mark.parametrize(
    ("space", "objectives", "message"),
    [
        (
            [{"name": f"x{i}", "type": "continuous", "bounds": [0, 1]} for i in range(1, 6)]
            + [{"name": "x6", "type": "categorical", "levels": ["a", "b"]}],
            None,
            "'x6' is categorical here but numeric in campaign 'earlier'",
        ),
        (
            [{"name": f"x{i}", "type": "continuous", "bounds": [0, 1]} for i in range(1, 8)],
            None,
            "campaign 'earlier' does not vary 'x7'",
        ),
        (None, [{"name": "z", "direction": "minimize"}], "campaign 'earlier' does not measure objective 'z'"),
    ],
)
def test_a_related_campaign_over_other_parameters_or_objectives_is_refused(
    sqlite_url: str, space: Any, objectives: Any, message: str
) -> None:
    db = open_database(sqlite_url)
    _run(db, _earlier())
    before = _counts(db)
    # A person is the lab (nothing is run): any space is accepted by the file, the database decides.
    data = hartmann_spec(related=[{"campaign": "earlier"}])
    data["lab"] = {"manual": {}}
    if space is not None:
        data["space"] = space
    if objectives is not None:
        data["objectives"] = objectives
    spec, text = to_spec(data)
    with pytest.raises(SpecError, match=r"^related\[0\]\.campaign: " + message.replace("(", r"\(")):
        open_campaign(db, spec, text)
    assert _counts(db) == before


def test_the_cli_refuses_a_missing_related_campaign_in_one_line_with_status_2(sqlite_url: str, tmp_path: Path) -> None:
    db = open_database(sqlite_url)
    _run(db, _earlier())
    before = _counts(db)
    path = write_spec(tmp_path / "h6.yaml", hartmann_spec(related=[{"campaign": "nowhere"}]))
    result = invoke("run", str(path), "--db", sqlite_url, "--engine", "inline", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: related[0].campaign: no campaign 'nowhere' in this database "
        "(one from an archive: `peirce archive import` it first)"
    ]
    assert _counts(db) == before


def test_a_campaign_learns_from_a_related_one_records_it_and_replays_exactly(sqlite_url: str) -> None:
    db = open_database(sqlite_url)
    earlier = _run(db, _earlier())
    target = _run(
        db,
        hartmann_spec(related=[{"campaign": "earlier"}], planner=BAYES, budget={"experiments": 6, "batch_size": 3}),
    )
    with db.session() as session:
        earlier_ids = [i for i, _ in observations(session, earlier, ["y"])]
        decisions = session.scalars(
            select(Decision).where(Decision.campaign_id == target, Decision.stage == "deduce").order_by(Decision.id)
        ).all()
        states = [DeductionState.model_validate(d.model_state) for d in decisions]
    assert len(earlier_ids) == 8 and len(states) == 2
    assert all(
        s.related is not None and [(r.campaign, r.observation_ids) for r in s.related] == [("earlier", earlier_ids)]
        for s in states
    )
    planner_state = states[1].planner or {}
    assert planner_state["phase"] == "model"
    assert planner_state["transfer"]["campaigns"] == [
        {"name": "earlier", "results": 8, "outside_space": 0, "over_limit": 0}
    ]
    report = replay_campaign(db, "h6")
    assert report.all_match(), [(r.status, r.note) for r in report.rows]
    assert [r.status for r in report.rows] == ["match", "match"]

    # A new result of the related campaign changes what a decision would see now (the hash), not what the recorded
    # decisions saw: replay reads the rows they recorded.
    with db.session() as session:
        spec = load_context(db, target).spec
        last = decisions[-1]
        recorded = [(i, o) for i, o in observations(session, target, ["y"]) if i in last.observation_ids]
        pending = [session.get_one(Experiment, i) for i in last.pending_ids]
        assert data_hash(recorded, pending, related_observations(session, spec)) == last.data_hash
        _add_result(session, earlier)
    with db.session() as session:
        assert data_hash(recorded, pending, related_observations(session, spec)) != last.data_hash
    assert replay_campaign(db, "h6").all_match()


def test_an_archive_carries_the_campaign_not_its_related_ones_and_replay_elsewhere_says_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    db = open_database(sqlite_url)
    _run(db, _earlier())
    _run(
        db, hartmann_spec(related=[{"campaign": "earlier"}], planner=BAYES, budget={"experiments": 6, "batch_size": 3})
    )
    archive = export_archive(db, "h6", tmp_path / "h6.zip")
    elsewhere = open_database(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert import_archive(elsewhere, archive) == "h6"
    report = replay_campaign(elsewhere, "h6")
    assert [r.status for r in report.rows] == ["mismatch", "mismatch"]
    assert all("related campaign 'earlier'" in r.note or "data hash" in r.note for r in report.rows)


def test_without_related_results_the_hash_is_the_one_of_before() -> None:
    observed = [(1, {"x": 0.5}, {"y": 1.0}, True)]
    pending = [(2, {"x": 0.1})]
    assert planning_data_hash(observed, pending) == planning_data_hash(observed, pending, ())
    assert planning_data_hash(observed, pending) != planning_data_hash(observed, pending, [("earlier", observed)])


def _add_result(session: Any, campaign_id: int) -> None:
    """One more completed experiment of the campaign (a copy of its first, with another value)."""
    first = session.scalars(select(Experiment).where(Experiment.campaign_id == campaign_id)).first()
    seq = session.scalar(select(func.max(Experiment.seq)).where(Experiment.campaign_id == campaign_id)) + 1
    row = Experiment(
        campaign_id=campaign_id,
        cycle_id=first.cycle_id,
        decision_id=first.decision_id,
        seq=seq,
        idempotency_key=f"earlier:{seq}",
        parameters=dict(first.parameters),
        state=ExperimentState.COMPLETED,
        attempts=1,
    )
    session.add(row)
    session.flush()
    session.add(Measurement(experiment_id=row.id, name="y", value=-1.0, attempt=1))
