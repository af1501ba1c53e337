"""The read-only queries review and CLI share: results, best so far, calibration, and the best experiment's
parameters in the order the campaign declares them (on SQLite and, in CI, on PostgreSQL, whose JSONB keeps keys
in an order of its own)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from orchestrator.review.export import campaign_status, campaign_summaries
from orchestrator.review.tables import overview
from orchestrator.store.database import Database, open_database
from orchestrator.store.models import Campaign, Cycle, Experiment, ExperimentState, Measurement
from orchestrator.store.queries import (
    BestStep,
    Result,
    best_so_far,
    best_steps,
    best_with_parameters,
    calibration,
    calibration_of,
    declared_order,
    observations,
    prediction_errors,
    results,
)
from planners.base import Prediction

# Declared neither alphabetically nor in reverse, so no accident of key order passes for the declared one.
DECLARED = ["temperature", "ligand", "concentration", "base"]
SPEC = {
    "space": [{"name": name, "type": "categorical", "levels": ["x"]} for name in DECLARED],
    "objectives": [{"name": "yield", "direction": "maximize"}, {"name": "cost", "direction": "minimize"}],
    "budget": {"experiments": 10},
}


@dataclass(frozen=True)
class Stated:
    name: str
    direction: str


def _campaign(db: Database) -> int:
    """Four experiments: #1 and #3 completed (#3 after a failed first attempt), #2 infeasible, #4 completed with
    an infinite yield (no result,
    though it would be the best). Parameters stored in alphabetical order, not the declared one."""
    with db.session() as session:
        campaign = Campaign(name="screen", spec=SPEC, spec_text="", spec_hash="0" * 64)
        session.add(campaign)
        session.flush()
        cycle = Cycle(
            campaign_id=campaign.id,
            index=1,
            stage="done",
            best={"cost": {"value": 2.0, "seq": 4}, "yield": {"value": 71.0, "seq": 3}},
        )
        session.add(cycle)
        session.flush()
        rows = [
            (1, ExperimentState.COMPLETED, 1, [(1, "yield", 40.0, 50.0, 10.0), (1, "cost", 3.0, None, None)]),
            (2, ExperimentState.INFEASIBLE, 1, []),
            (3, ExperimentState.COMPLETED, 2, [(1, "yield", 99.0, 60.0, 5.0), (2, "yield", 71.0, 70.0, 2.0)]),
            (4, ExperimentState.COMPLETED, 1, [(1, "yield", math.inf, None, None), (1, "cost", 2.0, 1.0, 0.0)]),
        ]
        for seq, state, attempts, measured in rows:
            parameters = {"base": "KOAc", "concentration": 0.1 * seq, "ligand": f"L{seq}", "temperature": 90 + seq}
            experiment = Experiment(
                campaign_id=campaign.id,
                cycle_id=cycle.id,
                seq=seq,
                idempotency_key=f"screen:{seq}",
                parameters=dict(sorted(parameters.items())),
                state=state,
                attempts=attempts,
            )
            session.add(experiment)
            session.flush()
            session.add_all(
                Measurement(
                    experiment_id=experiment.id,
                    name=name,
                    value=value,
                    attempt=attempt,
                    predicted_mean=mean,
                    predicted_std=std,
                )
                for attempt, name, value, mean, std in measured
            )
        return campaign.id


def test_the_best_experiments_parameters_come_in_declared_order(db_url: str) -> None:
    db = open_database(db_url)
    campaign_id = _campaign(db)
    with db.session() as session:
        best = best_with_parameters(session, campaign_id)
    assert list(best) == ["yield", "cost"]  # the objectives in declared order too
    assert list(best["yield"]["parameters"]) == DECLARED
    assert best["yield"] == {
        "value": 71.0,
        "seq": 3,
        "parameters": {"temperature": 93, "ligand": "L3", "concentration": pytest.approx(0.3), "base": "KOAc"},
    }
    status = campaign_status(db, "screen")
    assert status["best"]["yield"]["parameters"] == "temperature=93, ligand=L3, concentration=0.3, base=KOAc"
    assert list(overview(db, "screen")["best"]["yield"]["parameters"]) == DECLARED
    assert campaign_summaries(db)[0]["best"] == "yield=71, cost=2"


def test_declared_order_keeps_names_the_spec_does_not_declare_at_the_end() -> None:
    assert list(declared_order({"z": 1, "b": 2, "a": 3}, ["a", "b"])) == ["a", "b", "z"]


def test_results_are_final_attempts_of_completed_experiments(sqlite_url: str) -> None:
    db = open_database(sqlite_url)
    campaign_id = _campaign(db)
    with db.session() as session:
        found = results(session, campaign_id)
    assert [(r.seq, r.values.get("yield"), r.values.get("cost")) for r in found][:2] == [
        (1, 40.0, 3.0),
        (3, 71.0, None),  # the failed first attempt's 99 is no result
    ]
    assert found[2].seq == 4 and found[2].values["yield"] == math.inf and found[2].values["cost"] == 2.0


def test_best_so_far_follows_each_objectives_direction_and_skips_non_finite_values(sqlite_url: str) -> None:
    db = open_database(sqlite_url)
    campaign_id = _campaign(db)
    objectives = [Stated("yield", "maximize"), Stated("cost", "minimize"), Stated("purity", "maximize")]
    with db.session() as session:
        assert best_so_far(session, campaign_id, objectives) == {
            "yield": {"value": 71.0, "seq": 3},
            "cost": {"value": 2.0, "seq": 4},
        }


def test_a_tie_keeps_the_earlier_experiment() -> None:
    found = [Result(1, {}, {"y": 5.0}), Result(2, {}, {"y": 5.0}), Result(3, {}, {"y": 4.0})]
    assert list(best_steps(found, Stated("y", "minimize"))) == [
        BestStep(n=1, seq=1, value=5.0, best=5.0, best_seq=1, improved=True),
        BestStep(n=2, seq=2, value=5.0, best=5.0, best_seq=1, improved=False),
        BestStep(n=3, seq=3, value=4.0, best=4.0, best_seq=3, improved=True),
    ]


def test_calibration_counts_predictions_with_a_positive_sd_from_every_attempt(sqlite_url: str) -> None:
    db = open_database(sqlite_url)
    campaign_id = _campaign(db)
    with db.session() as session:
        summary = calibration(session, campaign_id)
    # yield: z = (40-50)/10 = -1, (99-60)/5 = 7.8, (71-70)/2 = 0.5; cost's one prediction has sd 0: none usable.
    assert list(summary) == ["yield"]
    yield_ = summary["yield"]
    assert yield_.predictions == 3
    assert yield_.within_1sd == pytest.approx(2 / 3) and yield_.within_2sd == pytest.approx(2 / 3)
    assert yield_.mean_z == pytest.approx((-1 + 7.8 + 0.5) / 3)
    assert yield_.rmse == pytest.approx(math.sqrt((100 + 39**2 + 1) / 3))


def test_calibration_of_nothing_is_none() -> None:
    assert calibration_of([]) is None


def test_prediction_errors_are_read_against_the_models_own_sd_and_observations_carry_the_prediction(
    db_url: str,
) -> None:
    """An experiment whose prediction was stated 2.5x wider than the model's sd: the ledger's errors divide by the
    model's sd (stated / 2.5), and the planner's observation carries the prediction with its spread; one stated as
    the model gave it (no spread recorded) counts with spread 1."""
    db = open_database(db_url)
    campaign_id = _campaign(db)
    with db.session() as session:
        third = session.scalar(select(Experiment).where(Experiment.campaign_id == campaign_id, Experiment.seq == 3))
        assert third is not None
        third.predicted = {"yield": {"mean": 70.0, "std": 2.0, "spread": 2.5}}
        first = session.scalar(select(Experiment).where(Experiment.campaign_id == campaign_id, Experiment.seq == 1))
        assert first is not None
        first.predicted = {"yield": {"mean": 50.0, "std": 10.0}}
    with db.session() as session:
        errors = prediction_errors(session, campaign_id)["yield"]
        seen = dict(observations(session, campaign_id, ["yield", "cost"]))
    # #1: (40 - 50) / 10; #3, both attempts against the model's sd: (99 - 60) / (5 / 2.5), (71 - 70) / (2 / 2.5)
    assert errors == pytest.approx([-1.0, 19.5, 1.25])
    predicted = {o.parameters["ligand"]: o.predicted for o in seen.values()}
    assert predicted["L3"] == {"yield": Prediction(mean=70.0, std=2.0, spread=2.5)}
    assert predicted["L1"] == {"yield": Prediction(mean=50.0, std=10.0, spread=1.0)}
    assert predicted["L2"] == {}  # infeasible: nothing to check a prediction against
