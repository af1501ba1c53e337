"""Deduction's pure part (`plan_batch`) and what the stage records: hypothesis tests first and named, the planner
filling the rest, forbidden proposals dropped, and the planner's warm start made only of its own state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from orchestrator.campaign import runs
from orchestrator.cycle.context import load_context, open_campaign
from orchestrator.cycle.deduce import deduce, plan_batch
from orchestrator.cycle.recovery import start_cycle
from orchestrator.store.database import open_database
from orchestrator.store.models import Decision
from planners.base import Observation, Plan, PlanningProblem, Prediction, Proposal
from planners.space import Point
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec


class ScriptedPlanner:
    """Proposes the points it is given, in order, and writes down what it was asked."""

    name = "scripted"

    def __init__(self, points: Sequence[Point], state: dict[str, Any] | None = None) -> None:
        self.points = list(points)
        self.state = state or {}
        self.calls: list[dict[str, Any]] = []

    def config(self) -> dict[str, Any]:
        return {"kind": "scripted"}

    def propose(
        self,
        problem: PlanningProblem,
        observations: Sequence[Observation],
        pending: Sequence[Point],
        batch_size: int,
        seed: int,
        warm_start: Mapping[str, Any] | None = None,
    ) -> Plan:
        self.calls.append({"pending": list(pending), "batch_size": batch_size, "warm_start": warm_start})
        chosen = [Proposal(parameters=p, predicted={"y": Prediction(0.5, 0.1)}) for p in self.points[:batch_size]]
        return Plan(chosen, model_state=dict(self.state))


def _point(x1: float) -> dict[str, float]:
    return {"x1": x1, "x2": 0.5, "x3": 0.5, "x4": 0.5, "x5": 0.5, "x6": 0.5}


def _problem(**overrides: Any) -> PlanningProblem:
    return to_spec(hartmann_spec(**overrides), EXAMPLES_DIR)[0].problem()


def test_plan_batch_puts_the_tests_first_and_the_planner_plans_around_them() -> None:
    planner = ScriptedPlanner([_point(0.1), _point(0.2), _point(0.3)], state={"hyperparameters": {"y": [1.0]}})
    test = Proposal(parameters=_point(0.9), rationale="tests hypothesis 7")
    batch = plan_batch(_problem(), planner, [], [_point(0.4)], [test], 3, seed=11, warm={"hyperparameters": {}})
    assert [p.parameters["x1"] for p in batch.proposals] == [0.9, 0.1, 0.2]
    (call,) = planner.calls
    assert call["batch_size"] == 2  # the test takes one slot of three
    assert call["pending"] == [_point(0.4), _point(0.9)]  # the test is pending to the planner
    assert call["warm_start"] == {"hyperparameters": {}}
    assert batch.planner_state == {"hyperparameters": {"y": [1.0]}}


def test_plan_batch_drops_proposals_in_a_forbidden_region_and_says_so() -> None:
    problem = _problem(
        safety={"forbidden_regions": [{"where": [{"parameter": "x1", "at_least": 0.5}], "reason": "too hot"}]}
    )
    planner = ScriptedPlanner([_point(0.2), _point(0.7), _point(0.3)])
    batch = plan_batch(problem, planner, [], [], [], 3, seed=0, warm=None)
    assert [p.parameters["x1"] for p in batch.proposals] == [0.2, 0.3]
    assert batch.warnings == ["1 proposal(s) fell in a forbidden region of the safety rules and were dropped"]


def _context(db_url: str, planner: ScriptedPlanner):
    db = open_database(db_url)
    spec, text = to_spec(hartmann_spec(budget={"experiments": 8, "batch_size": 2}), EXAMPLES_DIR)
    campaign_id, _ = open_campaign(db, spec, text)
    runs.claim(db, campaign_id)
    return db, load_context(db, campaign_id, planner=planner)


def test_the_planner_state_is_recorded_apart_and_is_the_next_warm_start(sqlite_url: str) -> None:
    state = {"hyperparameters": {"y": [0.25]}, "phase": "model"}
    planner = ScriptedPlanner([_point(0.1), _point(0.2)], state=state)
    db, ctx = _context(sqlite_url, planner)
    deduce(ctx, start_cycle(ctx), 2)
    deduce(ctx, start_cycle(ctx), 2)
    with db.session() as session:
        first = session.scalars(select(Decision).order_by(Decision.id)).first()
        assert first is not None
        assert first.model_state == {"planner": state, "hypothesis_tests": None}
        assert [p["tests_hypothesis"] for p in first.proposals] == [None, None]
    assert planner.calls[0]["warm_start"] is None
    assert planner.calls[1]["warm_start"] == state


def test_a_decision_recorded_in_the_merged_shape_warm_starts_the_planner_with_its_own_state_only(
    sqlite_url: str,
) -> None:
    planner = ScriptedPlanner([_point(0.1), _point(0.2)])
    db, ctx = _context(sqlite_url, planner)
    cycle_id = start_cycle(ctx)
    merged = {"hyperparameters": {"y": [0.5]}, "phase": "model", "hypothesis_tests": {"tests": 1, "open": 2}}
    with db.session() as session:  # a deduction as peirce recorded it before planner and tests were separated
        session.add(
            Decision(
                campaign_id=ctx.campaign_id,
                cycle_id=cycle_id,
                stage="deduce",
                planner="bayesian",
                planner_config={},
                seed=1,
                data_hash="-",
                observation_ids=[],
                pending_ids=[],
                proposals=[],
                versions={},
                model_state=merged,
                wall_time_s=0.0,
            )
        )
    deduce(ctx, cycle_id, 2)
    assert planner.calls[0]["warm_start"] == {"hyperparameters": {"y": [0.5]}, "phase": "model"}
