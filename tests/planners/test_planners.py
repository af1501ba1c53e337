"""The planner contract, as every planner (random, Sobol, Bayesian) must keep it, and the space they plan over.

Tests of what only the Bayesian planner does (models, acquisition, feasibility) are in test_bayesian.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planners.base import Observation, Planner, PlanningError, PlanningProblem, Proposal
from planners.baselines import RandomPlanner, SobolPlanner
from planners.bo.planner import BayesianPlanner, BayesianSettings
from planners.registry import build_planner
from planners.settings import RandomSettings, SobolSettings
from planners.space import (
    CategoricalParameter,
    ContinuousParameter,
    DiscreteParameter,
    IntegerParameter,
    LinearConstraint,
    MoleculeParameter,
    Objective,
    Point,
    Space,
    point_key,
)

KINDS = ["random", "sobol", "bayesian"]
OBJECTIVES = (Objective(name="y", direction="minimize"),)
SMILES_POOL = {"benzene": "c1ccccc1", "toluene": "Cc1ccccc1", "water": "O", "ethanol": "CCO", "DMAc": "CC(N(C)C)=O"}
DETERMINISTIC = settings(deadline=None, derandomize=True, database=None)


def continuous(name: str, lo: float, hi: float) -> ContinuousParameter:
    return ContinuousParameter(name=name, type="continuous", bounds=(lo, hi))


def integer(name: str, lo: int, hi: int) -> IntegerParameter:
    return IntegerParameter(name=name, type="integer", bounds=(lo, hi))


def discrete(name: str, values: list[float]) -> DiscreteParameter:
    return DiscreteParameter(name=name, type="discrete", values=values)


def categorical(name: str, levels: list[str]) -> CategoricalParameter:
    return CategoricalParameter(name=name, type="categorical", levels=levels)


def molecule(name: str, names: Sequence[str]) -> MoleculeParameter:
    return MoleculeParameter(name=name, type="molecule", smiles={n: SMILES_POOL[n] for n in names})


def constraint(coefficients: dict[str, float], operator: str, rhs: float) -> LinearConstraint:
    return LinearConstraint(coefficients=coefficients, operator=operator, rhs=rhs)


def mixed_space(constraints: Sequence[LinearConstraint] = ()) -> Space:
    """Continuous, integer, discrete, categorical and molecule parameters: an infinite space."""
    return Space(
        parameters=(
            continuous("a", 0.0, 1.0),
            continuous("b", -2.0, 3.0),
            integer("n", 1, 4),
            discrete("t", [90, 105, 120]),
            categorical("c", ["x", "y", "z"]),
            molecule("m", ["benzene", "toluene", "water"]),
        ),
        constraints=tuple(constraints),
    )


def finite_space(constraints: Sequence[LinearConstraint] = ()) -> Space:
    """3 x 3 x 2 = 18 points."""
    return Space(
        parameters=(integer("n", 1, 3), discrete("t", [90, 105, 120]), categorical("c", ["x", "y"])),
        constraints=tuple(constraints),
    )


def planner(kind: str, seed: int = 0) -> Planner:
    if kind == "bayesian":
        return BayesianPlanner(BayesianSettings(kind="bayesian", seed=seed))
    return RandomPlanner(seed=seed) if kind == "random" else SobolPlanner(seed=seed)


def propose(
    kind: str,
    space: Space,
    batch_size: int,
    seed: int = 0,
    observations: Sequence[Observation] = (),
    pending: Sequence[Point] = (),
) -> list[Point]:
    """Proposals of a planner whose own seed and planning seed are both `seed`."""
    plan = planner(kind, seed).propose(
        PlanningProblem(space, OBJECTIVES), list(observations), list(pending), batch_size, seed
    )
    proposals = plan.proposals
    assert all(isinstance(p, Proposal) for p in proposals)
    return [p.parameters for p in proposals]


def observed(points: Sequence[Point]) -> list[Observation]:
    return [Observation(parameters=p, values={"y": float(i)}) for i, p in enumerate(points)]


def keys(points: Sequence[Point]) -> list[tuple]:
    return [point_key(p) for p in points]


# --- reproducibility -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("space", [mixed_space(), finite_space()], ids=["mixed", "finite"])
def test_same_seed_same_proposals(kind: str, space: Space) -> None:
    assert propose(kind, space, 6, seed=42) == propose(kind, space, 6, seed=42)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("space", [mixed_space(), finite_space()], ids=["mixed", "finite"])
def test_different_seed_different_proposals(kind: str, space: Space) -> None:
    assert propose(kind, space, 6, seed=1) != propose(kind, space, 6, seed=2)


def test_random_planning_seed_drives_the_draws() -> None:
    problem = PlanningProblem(mixed_space(), OBJECTIVES)
    first = RandomPlanner(seed=0).propose(problem, [], [], 4, seed=5).proposals
    assert RandomPlanner(seed=99).propose(problem, [], [], 4, seed=5).proposals == first
    assert RandomPlanner(seed=0).propose(problem, [], [], 4, seed=6).proposals != first


def test_sobol_continues_its_sequence() -> None:
    space = mixed_space()
    first = propose("sobol", space, 4, seed=3)
    second = propose("sobol", space, 4, seed=3, observations=observed(first))
    assert keys(second) != keys(first)
    assert not set(keys(second)) & set(keys(first))
    # Exactly the next points of the same sequence, as one batch of 8 would have been.
    assert first + second == propose("sobol", space, 8, seed=3)
    # Pending points count as used, like observed ones.
    assert propose("sobol", space, 4, seed=3, pending=first) == second


def test_planner_configs_and_registry() -> None:
    random = build_planner(RandomSettings(kind="random", seed=4))
    sobol = build_planner(SobolSettings(kind="sobol", seed=5, scramble=False))
    assert isinstance(random, RandomPlanner)
    assert random.config() == {"kind": "random", "seed": 4}
    assert isinstance(sobol, SobolPlanner)
    assert sobol.config() == {"kind": "sobol", "seed": 5, "scramble": False}


# --- proposals stay in the space ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_proposals_in_bounds_and_in_the_space(kind: str) -> None:
    space = mixed_space()
    points = propose(kind, space, 64, seed=9)
    assert len(points) == 64
    assert len(set(keys(points))) == 64
    for point in points:
        assert space.contains(point), point
        assert 0.0 <= point["a"] <= 1.0
        assert -2.0 <= point["b"] <= 3.0
        assert isinstance(point["n"], int)
        assert 1 <= point["n"] <= 4
        assert point["t"] in (90, 105, 120)
        assert point["c"] in ("x", "y", "z")
        assert point["m"] in ("benzene", "toluene", "water")  # names, not SMILES


@pytest.mark.parametrize("kind", KINDS)
def test_linear_constraints_respected(kind: str) -> None:
    rules = [constraint({"a": 1, "b": 1}, "<=", 0.5), constraint({"n": 1, "a": -2}, ">=", 1.5)]
    space = mixed_space(rules)
    points = propose(kind, space, 40, seed=4)
    assert len(points) == 40
    for point in points:
        assert point["a"] + point["b"] <= 0.5 + 1e-9
        assert point["n"] - 2 * point["a"] >= 1.5 - 1e-9
        assert space.contains(point)


@pytest.mark.parametrize("kind", KINDS)
def test_linear_constraints_respected_on_a_finite_space(kind: str) -> None:
    space = finite_space([constraint({"n": 10, "t": 1}, "<=", 120)])  # n=1: any t; n=2: t<=100; n=3: none
    allowed = {point_key(p) for p in space.grid()}
    assert len(allowed) == 6 + 2
    points = propose(kind, space, 8, seed=0)
    assert set(keys(points)) == allowed


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("space_of", [mixed_space, finite_space], ids=["mixed", "finite"])
def test_impossible_constraint_is_named(kind: str, space_of: Any) -> None:
    space = space_of([constraint({"n": 1, "t": 2}, ">=", 1000)])
    with pytest.raises(PlanningError) as info:
        propose(kind, space, 2, seed=0)
    assert "1*n + 2*t >= 1000" in str(info.value)


# --- finite spaces: no repeats, exhaustion ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_finite_space_never_repeats_and_then_is_exhausted(kind: str) -> None:
    space = finite_space()
    assert space.grid_size == 18
    done: list[Point] = []
    running: list[Point] = []
    for cycle in range(6):
        batch = propose(kind, space, 4, seed=cycle, observations=observed(done), pending=running)
        assert batch, cycle
        assert all(space.contains(p) for p in batch)
        assert not set(keys(batch)) & set(keys(done + running)), "repeated an observed or pending point"
        assert len(set(keys(batch))) == len(batch)
        done, running = done + running, batch  # the last batch is still running while the next is planned
        if len(done) + len(running) == 18:
            break
    assert len(done) + len(running) == 18
    assert {point_key(p) for p in done + running} == {point_key(p) for p in space.grid()}
    with pytest.raises(PlanningError, match="already been tried or is pending"):
        propose(kind, space, 1, seed=99, observations=observed(done), pending=running)


def test_random_returns_what_is_left_of_a_finite_space() -> None:
    space = finite_space()
    grid = list(space.grid())
    left = propose("random", space, 5, seed=0, observations=observed(grid[:16]))
    assert sorted(keys(left)) == sorted(keys(grid[16:]))


def test_random_treats_infeasible_observations_as_tried() -> None:
    space = finite_space()
    grid = list(space.grid())
    failed = [Observation(parameters=p, values={}, feasible=False) for p in grid[:17]]
    assert propose("random", space, 3, seed=0, observations=failed) == [grid[17]]


# --- candidates ------------------------------------------------------------------------------------------------

CANDIDATES = [
    {"n": 1, "t": 90.0, "c": "x"},
    {"n": 2, "t": 105.0, "c": "y"},
    {"n": 3, "t": 120.0, "c": "x"},
    {"n": 3, "t": 90.0, "c": "y"},
    {"n": 1, "t": 120.0, "c": "y"},
]


def candidate_space(constraints: Sequence[LinearConstraint] = ()) -> Space:
    return Space(parameters=finite_space().parameters, constraints=tuple(constraints), candidates=CANDIDATES)


@pytest.mark.parametrize("kind", KINDS)
def test_candidates_restrict_proposals(kind: str) -> None:
    space = candidate_space()
    assert space.is_finite
    assert space.grid_size == 5
    allowed = set(keys(CANDIDATES))
    for seed in range(5):
        points = propose(kind, space, 3, seed=seed)
        assert len(points) == 3
        assert set(keys(points)) <= allowed, points


@pytest.mark.parametrize("kind", KINDS)
def test_candidates_are_exhausted_one_by_one(kind: str) -> None:
    space = candidate_space()
    done: list[Point] = []
    for seed in range(5):
        (point,) = propose(kind, space, 1, seed=seed, observations=observed(done))
        assert point_key(point) in set(keys(CANDIDATES))
        assert point_key(point) not in set(keys(done))
        done.append(point)
    with pytest.raises(PlanningError):
        propose(kind, space, 1, seed=0, observations=observed(done))


@pytest.mark.parametrize("kind", KINDS)
def test_candidates_and_constraints_together(kind: str) -> None:
    space = candidate_space([constraint({"n": 1}, "<=", 2)])
    points = propose(kind, space, 5, seed=0)
    assert sorted(keys(points)) == sorted(keys([c for c in CANDIDATES if c["n"] <= 2]))


@pytest.mark.parametrize("kind", KINDS)
def test_candidate_values_of_another_numeric_type_still_match(kind: str) -> None:
    # A lookup table gives integers back as floats (3.0); the planner must still recognise the points.
    candidates = [{"n": float(c["n"]), "t": c["t"], "c": c["c"]} for c in CANDIDATES]
    space = Space(parameters=finite_space().parameters, candidates=candidates)
    points = propose(kind, space, 5, seed=1)
    assert sorted(keys(points)) == sorted(keys(candidates))


# --- the space itself -------------------------------------------------------------------------------------------


def test_grid_and_feasibility() -> None:
    space = finite_space([constraint({"t": 1}, "<=", 100)])
    grid = list(space.grid())
    assert len(grid) == 3 * 1 * 2
    assert all(p["t"] == 90 for p in grid)
    assert mixed_space().grid_size == float("inf")
    assert not mixed_space().is_finite


def test_contains_rejects_wrong_points() -> None:
    space = finite_space()
    assert space.contains({"n": 2, "t": 105, "c": "y"})
    assert space.contains({"n": 2.0, "t": 105.0, "c": "y"})
    assert not space.contains({"n": 2, "t": 105})  # a parameter missing
    assert not space.contains({"n": 2, "t": 105, "c": "y", "extra": 1})
    assert not space.contains({"n": 2.5, "t": 105, "c": "y"})
    assert not space.contains({"n": 4, "t": 105, "c": "y"})
    assert not space.contains({"n": True, "t": 105, "c": "y"})
    assert not space.contains({"n": 2, "t": 100, "c": "y"})
    assert not space.contains({"n": 2, "t": 105, "c": "w"})
    assert not mixed_space().contains({**propose("random", mixed_space(), 1)[0], "m": "c1ccccc1"})


def test_point_key_ignores_float_noise_and_order() -> None:
    assert point_key({"a": 0.1 + 0.2, "c": "x"}) == point_key({"c": "x", "a": 0.3})
    assert point_key({"n": 3}) == point_key({"n": 3.0})
    assert point_key({"a": 0.3}) != point_key({"a": 0.31})


# --- properties -----------------------------------------------------------------------------------------------

NAMES = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), min_size=1, max_size=5, unique=True)


@st.composite
def parameters(draw: st.DrawFn, name: str) -> Any:
    kind = draw(st.sampled_from(["continuous", "integer", "discrete", "categorical", "molecule"]))
    if kind == "continuous":
        lo = draw(st.floats(-1e6, 1e6))
        width = draw(st.floats(1e-3, 1e6))
        return continuous(name, lo, lo + width)
    if kind == "integer":
        lo = draw(st.integers(-100, 100))
        return integer(name, lo, lo + draw(st.integers(1, 20)))
    if kind == "discrete":
        return discrete(name, draw(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=5, unique=True)))
    if kind == "categorical":
        return categorical(name, draw(st.lists(st.text(min_size=1, max_size=5), min_size=2, max_size=4, unique=True)))
    return molecule(name, draw(st.lists(st.sampled_from(sorted(SMILES_POOL)), min_size=2, max_size=5, unique=True)))


@st.composite
def spaces(draw: st.DrawFn) -> Space:
    return Space(parameters=tuple(draw(parameters(name)) for name in draw(NAMES)))


@DETERMINISTIC
@given(st.data())
def test_from_unit_is_always_in_the_space(data: st.DataObject) -> None:
    space = data.draw(spaces())
    u = data.draw(st.lists(st.floats(0, 1), min_size=len(space.parameters), max_size=len(space.parameters)))
    point = space.from_unit(u)
    assert space.contains(point), (space, u, point)


@DETERMINISTIC
@given(st.floats(0, 1))
def test_from_unit_spans_every_value(shift: float) -> None:
    space = Space(parameters=(discrete("t", [90, 105, 120]), categorical("c", ["x", "y"])))
    # Any grid of unit points that puts one point in each cell reaches every value.
    cells = [((i + shift * 0.999) / 3, (j + shift * 0.999) / 2) for i in range(3) for j in range(2)]
    assert {point_key(space.from_unit(u)) for u in cells} == {point_key(p) for p in space.grid()}


@settings(DETERMINISTIC, max_examples=30)
@given(spaces(), st.integers(0, 2**32 - 1), st.sampled_from(KINDS))
def test_proposals_are_always_in_the_space(space: Space, seed: int, kind: str) -> None:
    points = propose(kind, space, 3, seed=seed)
    assert points
    assert all(space.contains(p) for p in points)
    assert len(set(keys(points))) == len(points)
