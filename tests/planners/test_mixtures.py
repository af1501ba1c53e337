"""Mixtures: continuous parameters that are fractions of one whole. Every planner proposes points on the bounded
simplex only (sum to the total within 1e-9, each component within its bounds), drawn uniformly by the baselines,
found under the equality by the Bayesian planner; effects of one component move the others in proportion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from planners.base import Observation, PlanningError, PlanningProblem
from planners.bo.encoding import SpaceEncoding
from planners.bo.posterior import fit_surrogate
from planners.hypotheses.base import AbductionRequest
from planners.hypotheses.claims import EffectClaim
from planners.hypotheses.credence import evaluate_claims
from planners.hypotheses.model_abductor import ModelAbductor
from planners.registry import build_planner
from planners.settings import BayesianSettings, RandomSettings, SobolSettings
from planners.space import (
    CategoricalParameter,
    ContinuousParameter,
    LinearConstraint,
    Mixture,
    Objective,
    Point,
    Space,
    constraints_satisfiable,
)

METALS = ["fe", "ni", "co", "mn", "mg"]
OBJECTIVES = (Objective(name="y", direction="minimize"),)


def fraction(name: str, low: float = 0.0, high: float = 0.6) -> ContinuousParameter:
    return ContinuousParameter(name=name, type="continuous", bounds=(low, high))


def alloy_space(*, extra: tuple[Any, ...] = (), constraints: tuple[LinearConstraint, ...] = ()) -> Space:
    """Five metals, each 0..0.6 (Mg at least 0.02), summing to one; optionally more parameters and constraints."""
    parameters = [fraction(n) for n in METALS[:-1]] + [fraction("mg", 0.02, 0.6), *extra]
    return Space(parameters=parameters, constraints=constraints, mixtures=(Mixture(parameters=METALS),))


def response(point: Point) -> float:
    """A smooth response with an interior optimum on the simplex (and a categorical effect when there is one)."""
    value = (point["fe"] - 0.2) ** 2 + (point["ni"] - 0.35) ** 2 + 0.5 * point["mg"] + 0.1 * point["co"]
    if point.get("support") == "carbon":
        value += 0.05
    return value


def assert_on_simplex(space: Space, point: Point) -> None:
    total = sum(float(point[n]) for n in METALS)
    assert abs(total - 1.0) <= 1e-9, (total, point)
    for name in METALS:
        low, high = space.parameter(name).bounds
        assert low <= point[name] <= high, (name, point)
    assert space.feasible(point)


PLANNERS = {
    "random": RandomSettings(kind="random", seed=3),
    "sobol": SobolSettings(kind="sobol", seed=3),
    "bayesian": BayesianSettings(kind="bayesian", seed=3, num_restarts=2, raw_samples=32, min_observations=3),
}
SPACES = {
    "mixture": lambda: alloy_space(),
    "mixture+constraint": lambda: alloy_space(
        constraints=(LinearConstraint(coefficients={"fe": 1, "ni": 1}, operator="<=", rhs=0.7),)
    ),
    "mixture+categorical": lambda: alloy_space(
        extra=(CategoricalParameter(name="support", type="categorical", levels=["carbon", "nickel_foam"]),)
    ),
}


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("kind", list(PLANNERS))
def test_every_proposal_of_every_planner_lies_on_the_bounded_simplex(kind: str, space_name: str) -> None:
    space = SPACES[space_name]()
    problem = PlanningProblem(space=space, objectives=OBJECTIVES)
    planner = build_planner(PLANNERS[kind])
    observations: list[Observation] = []
    cycles = 3 if kind == "bayesian" else 6
    for cycle in range(cycles):
        plan = planner.propose(problem, observations, [], 3, seed=cycle)
        assert len(plan.proposals) == 3
        for proposal in plan.proposals:
            assert_on_simplex(space, proposal.parameters)
            assert all(c.satisfied_by(proposal.parameters) for c in space.constraints)
            point = proposal.parameters
            observations.append(Observation(parameters=point, values={"y": response(point)}))


def test_the_bayesian_optimiser_meets_the_equality_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoded points are snapped onto the simplex, which would hide an equality the optimiser never saw: with
    the snap disabled, the optimiser's own points must already sum to one (SLSQP meets it to about 1e-6)."""
    space = alloy_space()
    problem = PlanningProblem(space=space, objectives=OBJECTIVES)
    drawn = build_planner(PLANNERS["random"]).propose(problem, [], [], 6, seed=0).proposals
    observations = [Observation(parameters=p.parameters, values={"y": response(p.parameters)}) for p in drawn]
    monkeypatch.setattr(Space, "snap", lambda self, point: dict(point))
    planner = build_planner(PLANNERS["bayesian"])
    plan = planner.propose(problem, observations, [], 3, seed=1)
    assert plan.model_state["phase"] == "model"
    for proposal in plan.proposals:
        assert sum(proposal.parameters[n] for n in METALS) == pytest.approx(1.0, abs=1e-5)


def test_the_encoding_states_the_equality_in_the_search_representation() -> None:
    space = alloy_space()
    encoding = SpaceEncoding(space)
    [(indices, coefficients, rhs)] = encoding.equality_constraints()
    assert indices.tolist() == [0, 1, 2, 3, 4]
    point = {"fe": 0.3, "ni": 0.3, "co": 0.2, "mn": 0.1, "mg": 0.1}
    u = encoding.encode([point])[0]
    assert float((coefficients * u[indices]).sum()) == pytest.approx(rhs)


def test_uniform_draws_cover_the_bounded_simplex_like_a_rejected_dirichlet() -> None:
    """`from_unit` of uniform points, kept when feasible, has the law of a flat Dirichlet restricted to the bounds:
    each component's marginal passes a two-sample Kolmogorov-Smirnov test against Dirichlet draws with rejection.
    Normalising uniform draws would fail it (its marginals pile up near 1/k)."""
    space = alloy_space()
    rng = np.random.default_rng(0)
    drawn = [space.from_unit(rng.random(5)) for _ in range(20_000)]
    kept = np.array([[p[n] for n in METALS] for p in drawn if space.feasible(p)])
    shifted = 0.02 * np.eye(5)[4] + 0.98 * rng.dirichlet(np.ones(5), 60_000)
    reference = shifted[(shifted <= 0.6).all(axis=1)]
    normalised = rng.random((20_000, 5))
    normalised /= normalised.sum(axis=1, keepdims=True)
    for j in range(5):
        assert stats.ks_2samp(kept[:, j], reference[:, j]).pvalue > 1e-3, METALS[j]
    assert stats.ks_2samp(normalised[:, 0], reference[:, 0]).pvalue < 1e-6
    assert kept[:, 4].min() >= 0.02
    assert np.abs(kept.sum(axis=1) - 1).max() <= 1e-12


def test_snap_moves_a_point_to_the_nearest_point_of_the_bounded_simplex() -> None:
    space = alloy_space()
    near = space.snap({"fe": 0.3, "ni": 0.3, "co": 0.2, "mn": 0.1, "mg": 0.100004})
    assert sum(near[n] for n in METALS) == pytest.approx(1.0, abs=1e-15)
    assert all(abs(near[n] - v) < 1e-5 for n, v in zip(METALS, [0.3, 0.3, 0.2, 0.1, 0.1], strict=True))
    far = space.snap({"fe": 0.9, "ni": 0.5, "co": 0.0, "mn": 0.0, "mg": 0.0})
    assert_on_simplex(space, far)
    assert far["fe"] == pytest.approx(0.6) and far["mg"] == pytest.approx(0.02)


def test_setting_one_component_moves_the_others_in_proportion() -> None:
    space = alloy_space()
    point = {"fe": 0.3, "ni": 0.3, "co": 0.2, "mn": 0.1, "mg": 0.1}
    moved = space.setting(point, "fe", 0.5)
    assert sum(moved.values()) == pytest.approx(1.0)
    assert moved["ni"] / moved["co"] == pytest.approx(1.5) and moved["fe"] == 0.5
    held = space.setting(point, "fe", 0.5, fixed=("mg",))
    assert held["mg"] == 0.1 and sum(held.values()) == pytest.approx(1.0)
    context = {k: v for k, v in point.items() if k != "fe"}  # a context without the component itself
    assert sum(space.setting(context, "fe", 0.1).values()) == pytest.approx(1.0)


def test_infeasible_mixtures_are_refused_by_every_planner() -> None:
    space = Space(
        parameters=[fraction(n, 0.0, 0.15) for n in METALS],
        mixtures=(Mixture(parameters=METALS),),
    )
    assert not constraints_satisfiable(space.parameters, space.constraints, space.mixtures)
    problem = PlanningProblem(space=space, objectives=OBJECTIVES)
    for settings in PLANNERS.values():
        with pytest.raises(PlanningError, match=r"fe \+ ni \+ co \+ mn \+ mg = 1"):
            build_planner(settings).propose(problem, [], [], 1, seed=0)
    assert constraints_satisfiable(alloy_space().parameters, (), alloy_space().mixtures)


def test_a_mixture_validates_its_components() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        Mixture(parameters=["fe", "fe"])
    with pytest.raises(ValueError):
        Mixture(parameters=["fe"])
    with pytest.raises(ValueError):
        Mixture(parameters=["fe", "ni"], total=0)
    assert Mixture(parameters=["a", "b"], total=100).describe() == "a + b = 100"


def test_claims_about_a_component_are_decided_along_coxs_direction() -> None:
    """Effects of one metal compare compositions that still sum to one (the others in proportion): the fitted
    model's credence that more Mg raises the response (it does: 0.5 per unit) is high, and the abductor's
    candidates about components can be evaluated at all (a plain `{**point, name: value}` leaves the simplex)."""
    space = alloy_space()
    problem = PlanningProblem(space=space, objectives=OBJECTIVES)
    drawn = build_planner(PLANNERS["sobol"]).propose(problem, [], [], 24, seed=0).proposals
    observations = [Observation(parameters=p.parameters, values={"y": response(p.parameters)}) for p in drawn]
    surrogate = fit_surrogate(problem, observations, PLANNERS["bayesian"])
    assert surrogate is not None
    claim = EffectClaim(objective="y", parameter="mg", from_value=0.05, to_value=0.45, direction="raises")
    evaluations, _ = evaluate_claims(surrogate, {0: claim}, space, observations, 256, seed=0)
    assert evaluations[0].credence > 0.9
    assert all(assert_on_simplex(space, p) is None for p in evaluations[0].points)
    request = AbductionRequest(
        problem=problem, goal="", observations=tuple(observations), ledger=(), max_new=2, seed=0, notes=()
    )
    abduction = ModelAbductor(n_samples=128).propose(request, surrogate)
    assert abduction.error is None and abduction.drafts
