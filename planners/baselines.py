"""Baseline planners: uniform random and scrambled Sobol. Every smarter planner must beat these."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import qmc

from planners.base import Observation, Plan, PlanningError, PlanningProblem, Proposal
from planners.space import Point, Space, point_key

# Largest finite space enumerated in full; above it, finite spaces are sampled like continuous ones.
MAX_ENUMERATED_POINTS = 2_000_000
# Draws allowed per wanted point before concluding that the constraints exclude (nearly) everything.
DRAWS_PER_POINT = 2_000


class RandomPlanner:
    """Uniform random points. On a finite space it draws without replacement, never repeating a point."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def config(self) -> dict[str, Any]:
        return {"kind": self.name, "seed": self.seed}

    def propose(
        self,
        problem: PlanningProblem,
        observations: Sequence[Observation],
        pending: Sequence[Point],
        batch_size: int,
        seed: int,
        warm_start: Mapping[str, Any] | None = None,
    ) -> Plan:
        rng = np.random.default_rng(seed)
        seen = _seen_keys(observations, pending)
        space = problem.space
        if space.is_finite and space.grid_size <= MAX_ENUMERATED_POINTS:
            feasible = list(space.grid())
            if not feasible and space.constraints:
                raise PlanningError(f"no point of the finite space satisfies the constraints ({_describe(space)})")
            candidates = [p for p in feasible if point_key(p) not in seen]
            if not candidates:
                raise PlanningError(_exhausted_message(space))
            chosen = rng.choice(len(candidates), size=min(batch_size, len(candidates)), replace=False)
            return Plan([Proposal(parameters=candidates[i]) for i in chosen])
        draws = (
            space.from_unit(rng.random(len(space.parameters)).tolist()) for _ in range(batch_size * DRAWS_PER_POINT)
        )
        return Plan(_take_new(draws, space, seen, batch_size))


class SobolPlanner:
    """Scrambled Sobol points; the sequence continues across cycles so the whole campaign is space-filling."""

    name = "sobol"

    def __init__(self, seed: int = 0, scramble: bool = True) -> None:
        self.seed = seed
        self.scramble = scramble

    def config(self) -> dict[str, Any]:
        return {"kind": self.name, "seed": self.seed, "scramble": self.scramble}

    def propose(
        self,
        problem: PlanningProblem,
        observations: Sequence[Observation],
        pending: Sequence[Point],
        batch_size: int,
        seed: int,
        warm_start: Mapping[str, Any] | None = None,
    ) -> Plan:
        space = problem.space
        # One sequence per campaign (scrambled by the planner's own seed), continued past the points already
        # used, so consecutive batches fill the gaps left by earlier ones.
        engine = qmc.Sobol(d=len(space.parameters), scramble=self.scramble, seed=self.seed)
        used = len(observations) + len(pending)
        if used:
            engine.fast_forward(used)

        # A space with candidates (the rows of a lookup table) can only run those: other draws are skipped.
        allowed = None if space.candidates is None else {point_key(p) for p in space.candidates}

        def draws() -> Iterator[Point]:
            for _ in range(batch_size * DRAWS_PER_POINT):
                point = space.from_unit(engine.random(1)[0])
                if allowed is None or point_key(point) in allowed:
                    yield point

        seen = _seen_keys(observations, pending)
        if space.is_finite and space.grid_size <= MAX_ENUMERATED_POINTS and len(seen) >= space.grid_size:
            raise PlanningError(_exhausted_message(space))
        return Plan(_take_new(draws(), space, seen, batch_size))


def _seen_keys(observations: Sequence[Observation], pending: Sequence[Point]) -> set[tuple]:
    return {point_key(o.parameters) for o in observations} | {point_key(p) for p in pending}


def _take_new(draws: Iterator[Point], space: Space, seen: set[tuple], batch_size: int) -> list[Proposal]:
    """The first `batch_size` feasible draws not seen before (only finite spaces can repeat a point)."""
    proposals: list[Proposal] = []
    taken = set(seen) if space.is_finite else set()
    for point in draws:
        if not space.feasible(point):
            continue
        key = point_key(point)
        if key in taken:
            continue
        taken.add(key)
        proposals.append(Proposal(parameters=point))
        if len(proposals) == batch_size:
            return proposals
    if proposals:
        return proposals
    if space.constraints or space.mixtures:
        raise PlanningError(
            f"no point satisfies the constraints ({_describe(space)}) after {batch_size * DRAWS_PER_POINT} draws"
        )
    raise PlanningError(_exhausted_message(space))


def _describe(space: Space) -> str:
    return "; ".join([*(m.describe() for m in space.mixtures), *(c.describe() for c in space.constraints)])


def _exhausted_message(space: Space) -> str:
    return f"every point of the finite space ({space.grid_size} points) has already been tried or is pending"
