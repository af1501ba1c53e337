"""Induction: the credence of each claim, the posterior probability that it is true under the surrogate.

For every claim we build the set of points its truth depends on, draw joint posterior samples of the latent
response at all of them at once, decide the claim in each sample, and count: the credence is the share of
samples in which the claim holds. Drawing jointly matters: "A beats B on average" and "the best lies in R" are
statements about many correlated values, and independent marginals would overstate the uncertainty.

What each kind needs (the "reference" points stand for the space: every point of a finite space, or a subsample
of it, or a scrambled Sobol sample of a continuous one):
- effect / contrast: the reference points projected on the other parameters, with the claim's parameter set to
  each of its two values and the context held; the claim holds when the mean over the first set beats the mean
  over the second (a component of a mixture is set with the other components scaled in proportion);
- region: the reference points; it holds when the sample's best point satisfies the conditions;
- attainability: the reference points; it holds when the sample's best value passes the stated value, or at once
  (credence 1) when a measured result already did. Widening (below) widens the best value's distribution about its
  mean, not each point's sample: the extreme of many widened samples would move outwards and be overstated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from planners.base import Observation
from planners.bo.posterior import Surrogate
from planners.hypotheses.claims import AttainabilityClaim, Claim, ContrastClaim, EffectClaim, RegionClaim
from planners.sampling import sobol_points
from planners.space import Point, Space

# Points that stand for the space when deciding region and attainability claims (the best points by posterior
# mean are always among them, so the argmax of a sample is rarely missed).
MAX_REFERENCE_POINTS = 1024
TOP_PREDICTED = 256
# Context points over which an effect or contrast is averaged.
MAX_CONTEXT_POINTS = 192


@dataclass
class ClaimEvaluation:
    """A claim under the current model."""

    credence: float
    holds: np.ndarray  # `S` booleans: the claim in each joint posterior sample
    quantity: str  # what `mean` and `std` measure, in words
    mean: float
    std: float
    points: list[Point]  # where the claim was evaluated (the experiments that could bear on it lie among these)
    demonstrated: bool = False  # settled by a measured result, not by the model
    widened_by: float = 1.0  # factor applied to the posterior's spread (see `evaluate_claims`)

    def predicted(self) -> dict[str, float | str]:
        return {
            "quantity": self.quantity,
            "mean": self.mean,
            "std": self.std,
            "credence": self.credence,
            "widened_by": self.widened_by,
        }


@dataclass
class _Plan:
    objective: str
    points: list[Point]
    decide: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # samples (S x n) -> (holds, per-sample value)
    quantity: str
    # For a claim on an extreme (attainability): whether a per-sample value passes. The value is then taken from
    # the posterior as fitted and widened about its own mean, instead of taken from widened samples: the extreme
    # of a thousand samples each widened about its mean is pushed outwards, so widening would make "the best can
    # pass v" more credible, not less certain.
    passes: Callable[[np.ndarray], np.ndarray] | None = None


class ReferenceSet:
    """Points that stand for the space, shared by all claims evaluated together."""

    def __init__(self, space: Space, surrogate: Surrogate, rng: np.random.Generator) -> None:
        self.space = space
        self.surrogate = surrogate
        self.rng = rng
        if space.is_finite and space.grid_size <= 200_000:
            self.all = list(space.grid())
        else:
            drawn = (space.from_unit(u) for u in sobol_points(len(space.parameters), 4 * MAX_REFERENCE_POINTS, rng))
            self.all = [p for p in drawn if space.feasible(p)][: 2 * MAX_REFERENCE_POINTS]
        self._best: dict[str, list[Point]] = {}
        self._contexts: dict[tuple, list[Point]] = {}

    def for_optimum(self, objective: str) -> list[Point]:
        """The reference points for an argmax: all of them when few, else the best predicted plus a random draw."""
        if objective in self._best:
            return self._best[objective]
        points = self.all
        if len(points) > MAX_REFERENCE_POINTS:
            mean, _ = self.surrogate.predict(objective, points)
            order = np.argsort(-mean * self.surrogate.signs[objective])
            top = list(order[:TOP_PREDICTED])
            rest = order[TOP_PREDICTED:]
            top += list(self.rng.choice(rest, size=MAX_REFERENCE_POINTS - TOP_PREDICTED, replace=False))
            points = [self.all[i] for i in sorted(top)]
        self._best[objective] = points
        return points

    def contexts(self, parameter: str, held: Mapping[str, object]) -> list[Point]:
        """Distinct settings of the other parameters (with `held` imposed), at most MAX_CONTEXT_POINTS of them.

        Cached: many claims (every contrast between levels of one parameter) share their contexts, and drawing the
        same contexts for them keeps their credences comparable.
        """
        cache_key = (parameter, tuple(sorted((k, str(v)) for k, v in held.items())))
        if cache_key in self._contexts:
            return self._contexts[cache_key]
        others = [name for name in self.space.names if name != parameter]
        seen: dict[tuple, Point] = {}
        for point in self.all:
            context = {name: held.get(name, point[name]) for name in others}
            seen.setdefault(tuple(context.values()), context)
        contexts = list(seen.values())
        if len(contexts) > MAX_CONTEXT_POINTS:
            keep = sorted(self.rng.choice(len(contexts), size=MAX_CONTEXT_POINTS, replace=False))
            contexts = [contexts[i] for i in keep]
        self._contexts[cache_key] = contexts
        return contexts


def evaluate_claims(
    surrogate: Surrogate,
    claims: Mapping[int, Claim],
    space: Space,
    observations: Sequence[Observation],
    n_samples: int,
    seed: int,
    extra_points: Sequence[Point] = (),
    widen: Mapping[str, float] | None = None,
) -> tuple[dict[int, ClaimEvaluation], dict[str, np.ndarray]]:
    """Evaluate every claim from joint posterior samples (one draw per objective over all points involved).

    The posterior's spread is widened, per objective, by the larger of the GP's leave-one-out miscalibration and
    `widen` (the campaign's record: the scale of (measured − predicted) / predicted sd on experiments the model had
    not seen), capped at 3. A GP that has been overconfident about new experiments would otherwise
    settle claims on confidence it has not earned.

    Returns each claim's evaluation and, per objective, the samples at `extra_points` (`S x len(extra_points)`,
    drawn jointly with the claims' points, so deduction can measure what an experiment there would tell).
    """
    rng = np.random.default_rng(seed)
    reference = ReferenceSet(space, surrogate, rng)
    plans = {key: _plan(claim, space, reference) for key, claim in claims.items()}
    objectives = sorted({plan.objective for plan in plans.values()} | ({*surrogate.models} if extra_points else set()))
    results: dict[int, ClaimEvaluation] = {}
    extra_samples: dict[str, np.ndarray] = {}
    for objective in objectives:
        mine = {key: plan for key, plan in plans.items() if plan.objective == objective}
        names = space.names
        index: dict[tuple, int] = {}
        union: list[Point] = []
        for point in [p for plan in mine.values() for p in plan.points] + list(extra_points):
            coordinates = tuple(point[name] for name in names)  # points here come from the space's own values
            if coordinates not in index:
                index[coordinates] = len(union)
                union.append(point)
        factor = min(3.0, max(surrogate.calibration(objective), (widen or {}).get(objective, 1.0)))
        samples = surrogate.sample(objective, union, n_samples, seed, widen=factor)
        # Same seed: the same draws before widening.
        fitted = samples
        if factor != 1.0 and any(plan.passes is not None for plan in mine.values()):
            fitted = surrogate.sample(objective, union, n_samples, seed)
        for key, plan in mine.items():
            columns = [index[tuple(p[name] for name in names)] for p in plan.points]
            if plan.passes is not None:
                _, value = plan.decide(fitted[:, columns])
                value = value.mean() + factor * (value - value.mean())
                holds = plan.passes(value)
            else:
                holds, value = plan.decide(samples[:, columns])
            results[key] = ClaimEvaluation(
                credence=float(holds.mean()),
                holds=holds,
                quantity=plan.quantity,
                mean=float(value.mean()),
                std=float(value.std()),
                points=plan.points,
                widened_by=factor,
            )
        if extra_points:
            extra_samples[objective] = samples[:, [index[tuple(p[name] for name in names)] for p in extra_points]]
    for key, claim in claims.items():
        if isinstance(claim, AttainabilityClaim) and _attained(claim, observations):
            evaluation = results[key]
            evaluation.credence, evaluation.demonstrated = 1.0, True
            evaluation.holds = np.ones_like(evaluation.holds)
    return results, extra_samples


def _plan(claim: Claim, space: Space, reference: ReferenceSet) -> _Plan:
    if isinstance(claim, EffectClaim | ContrastClaim):
        return _paired_plan(claim, space, reference)
    points = reference.for_optimum(claim.objective)
    sign = reference.surrogate.signs[claim.objective]
    if isinstance(claim, RegionClaim):
        inside = np.array([claim.holds(p) for p in points])

        def decide_region(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            best = np.argmax(samples * sign, axis=1)
            return inside[best], inside[best].astype(float)

        return _Plan(claim.objective, points, decide_region, "probability that the best point lies in the region")

    def passes(extreme: np.ndarray) -> np.ndarray:
        return extreme > claim.value if claim.relation == "above" else extreme < claim.value

    def decide_attainable(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        extreme = samples.max(axis=1) if claim.relation == "above" else samples.min(axis=1)
        return passes(extreme), extreme

    word = "highest" if claim.relation == "above" else "lowest"
    return _Plan(claim.objective, points, decide_attainable, f"{word} {claim.objective} in the space", passes)


def _paired_plan(claim: EffectClaim | ContrastClaim, space: Space, reference: ReferenceSet) -> _Plan:
    first: float | str
    second: float | str
    if isinstance(claim, EffectClaim):
        first, second = claim.to_value, claim.from_value
        # "raises": y(to) > y(from); "lowers": y(to) < y(from).
        flip = claim.direction == "lowers"
        quantity = f"mean change in {claim.objective} from {claim.from_value:g} to {claim.to_value:g}"
    else:
        first, second, flip = claim.better, claim.worse, False
        quantity = f"mean difference in {claim.objective}, {claim.better} minus {claim.worse}"
    high, low = [], []
    for context in reference.contexts(claim.parameter, claim.context):
        # A mixture's component moves with the other (unheld) components in proportion (`Space.setting`).
        held = tuple(claim.context)
        a = space.setting(context, claim.parameter, first, fixed=held)
        b = space.setting(context, claim.parameter, second, fixed=held)
        if space.feasible(a) and space.feasible(b):
            high.append(a)
            low.append(b)
    if not high:
        raise ValueError(f"no pair of points of the space differs only in {claim.parameter} as the claim needs")
    n = len(high)

    def decide(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        difference = samples[:, :n].mean(axis=1) - samples[:, n:].mean(axis=1)
        return (difference < 0 if flip else difference > 0), difference

    return _Plan(claim.objective, high + low, decide, quantity)


def _attained(claim: AttainabilityClaim, observations: Sequence[Observation]) -> bool:
    for observation in observations:
        value = observation.values.get(claim.objective) if observation.feasible else None
        if value is not None and (value > claim.value if claim.relation == "above" else value < claim.value):
            return True
    return False


def bears_on(claim: Claim, point: Mapping[str, Any], space: Space) -> bool:
    """Whether a result at `point` speaks to the claim directly, without a model: a contrast's levels, an effect's
    two settings (within 1 % of the parameter's range), a point inside a region; every result for attainability."""
    if isinstance(claim, AttainabilityClaim):
        return True
    if isinstance(claim, RegionClaim):
        return claim.holds(dict(point))
    if any(not _same(space, name, point[name], value) for name, value in claim.context.items()):
        return False
    value = point[claim.parameter]
    if isinstance(claim, ContrastClaim):
        return value in (claim.better, claim.worse)
    return _same(space, claim.parameter, value, claim.from_value) or _same(
        space, claim.parameter, value, claim.to_value
    )


def _same(space: Space, name: str, a: float | str, b: float | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    p = space.parameter(name)
    low, high = p.bounds if hasattr(p, "bounds") else (min(p.values), max(p.values))
    return abs(float(a) - float(b)) <= 0.01 * (float(high) - float(low))


def binary_entropy(p: np.ndarray | float) -> np.ndarray:
    """Entropy of a yes/no claim with credence `p`, in bits."""
    p = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
