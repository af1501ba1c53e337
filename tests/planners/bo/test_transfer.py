"""Transfer learning: with the results of a related campaign whose optimum lies where this one's does, the Bayesian
planner's first model batch goes there; results outside the space are left out and counted; the record says what
was used."""

from __future__ import annotations

import math

import torch

from planners.base import Observation, PlanningProblem, RelatedResults
from planners.bo.encoding import SpaceEncoding
from planners.bo.planner import BayesianPlanner, BayesianSettings
from planners.bo.transfer import TaskFeatureMap
from planners.space import CategoricalParameter, DiscreteParameter, Objective, Point, Space

LEVELS = [f"c{i}" for i in range(8)]
EFFECT = dict(zip(LEVELS, [0.0, 0.2, 0.1, 0.5, 0.3, 1.0, 0.4, 0.15], strict=True))
XS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
SPACE = Space(
    parameters=(
        CategoricalParameter(name="c", type="categorical", levels=LEVELS),
        DiscreteParameter(name="x", type="discrete", values=XS),
    )
)
MAXIMIZE_Y = (Objective(name="y", direction="maximize"),)
# The related task's three best points (level c5, x near 0.8); the target's best are the same three.
BEST_REGION = {("c5", 0.6), ("c5", 0.8), ("c5", 1.0)}


def shape(point: Point) -> float:
    return EFFECT[point["c"]] - 2.0 * (point["x"] - 0.8) ** 2


def related_task(point: Point) -> float:
    return shape(point)


def target_task(point: Point) -> float:
    # Another scale and level, and a small part of its own: correlated with the related task, not equal to it.
    return 20.0 * shape(point) + 50.0 + 0.5 * math.sin(7.0 * point["x"] + LEVELS.index(point["c"]))


def grid() -> list[Point]:
    return [{"c": c, "x": x} for c in LEVELS for x in XS]


def planner(seed: int) -> BayesianPlanner:
    return BayesianPlanner(BayesianSettings(kind="bayesian", seed=seed, num_restarts=2, raw_samples=32, mc_samples=64))


STARTS = [{"c": "c0", "x": 0.0}, {"c": "c2", "x": 0.4}]  # two poor results of this campaign


def first_model_batch(seed: int, related: tuple[RelatedResults, ...]) -> list[Point]:
    problem = PlanningProblem(SPACE, MAXIMIZE_Y, related=related)
    observations = [Observation(p, {"y": target_task(p)}) for p in STARTS]
    plan = planner(seed).propose(problem, observations, [], batch_size=3, seed=seed)
    assert plan.model_state["phase"] == "model"
    return [p.parameters for p in plan.proposals]


def in_region(batch: list[Point]) -> bool:
    return any((p["c"], p["x"]) in BEST_REGION for p in batch)


def test_related_results_lead_the_first_model_batch_to_the_related_tasks_best_region() -> None:
    related = (RelatedResults("earlier", tuple(Observation(p, {"y": related_task(p)}) for p in grid())),)
    seeds = [0, 1, 2]
    warm = [in_region(first_model_batch(seed, related)) for seed in seeds]
    cold = [in_region(first_model_batch(seed, ())) for seed in seeds]
    assert all(warm), warm
    # Not a property of the problem: two results say nothing of level c5, and the cold planner rarely goes there.
    assert sum(cold) < sum(warm), cold


def test_results_outside_the_space_are_left_out_and_counted_in_the_record() -> None:
    inside = [Observation(p, {"y": related_task(p)}) for p in grid()[::3]]
    outside = [
        Observation({"c": "c9", "x": 0.2}, {"y": 1.0}),  # a level this campaign does not offer
        Observation({"c": "c1", "x": 0.3}, {"y": 1.0}),  # a value it does not offer
    ]
    unmeasured = Observation({"c": "c1", "x": 0.2}, {"other": 1.0})  # no value of this campaign's objective
    problem = PlanningProblem(SPACE, MAXIMIZE_Y, related=(RelatedResults("earlier", (*inside, *outside, unmeasured)),))
    observations = [Observation(p, {"y": target_task(p)}) for p in STARTS]
    plan = planner(0).propose(problem, observations, [], batch_size=2, seed=0)
    transfer = plan.model_state["transfer"]
    assert transfer["campaigns"] == [{"name": "earlier", "results": len(inside), "outside_space": 2, "over_limit": 0}]
    assert set(transfer["correlation"]["y"]) == {"earlier"}
    assert 0.0 <= transfer["correlation"]["y"]["earlier"] <= 1.0
    assert plan.model_state["fit"]["y"]["related_observations"] == len(inside)
    assert all(p.predicted["y"].std > 0 for p in plan.proposals)


def test_without_related_results_the_record_has_no_transfer_part() -> None:
    observations = [Observation(p, {"y": target_task(p)}) for p in STARTS]
    plan = planner(0).propose(PlanningProblem(SPACE, MAXIMIZE_Y), observations, [], batch_size=2, seed=0)
    assert "transfer" not in plan.model_state


def test_the_task_column_passes_the_feature_map_untouched() -> None:
    encoding = SpaceEncoding(SPACE)
    X = encoding.encode(grid()[:4])
    with_task = torch.cat([torch.tensor([[0.0], [1.0], [2.0], [1.0]], dtype=X.dtype), X], dim=-1)
    out = TaskFeatureMap(encoding.feature_map).transform(with_task)
    assert torch.equal(out[:, 0], with_task[:, 0])
    assert torch.equal(out[:, 1:], encoding.feature_map.transform(X))


def test_the_length_scale_prior_setting_reaches_the_multi_task_model() -> None:
    related = (RelatedResults("earlier", tuple(Observation(p, {"y": related_task(p)}) for p in grid()[::4])),)
    problem = PlanningProblem(SPACE, MAXIMIZE_Y, related=related)
    observations = [Observation(p, {"y": target_task(p)}) for p in STARTS]
    settings = BayesianSettings(
        kind="bayesian", seed=0, num_restarts=2, raw_samples=32, mc_samples=64, length_scale_prior="gamma"
    )
    plan = BayesianPlanner(settings).propose(problem, observations, [], batch_size=2, seed=0)
    names = plan.model_state["hyperparameters"]["y"]
    # The data kernel (with the gamma prior's output scale) times the task kernel.
    assert "covar_module.kernels.0.raw_outputscale" in names, names
    assert any(name.startswith("covar_module.kernels.1.") for name in names), names
