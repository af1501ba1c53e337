"""Abduction without an LLM: hypotheses read off the fitted surrogate, so every campaign can run offline.

From the model it proposes, per objective,
- contrasts between the levels of each categorical or molecule parameter (the predicted best level against the
  runner-up and against the worst: the sharpest contrasts),
- effects of each numeric parameter (low to high, and low to middle / middle to high, which catches an optimum
  inside the range),
- regions: for each parameter, the half of its range (or the level) where the predicted optimum sits,
- attainability: that the objective can reach its target, or without one beat the best result so far by a tenth
  of the range seen.

Each candidate is phrased the way the model leans, then scored by how much there is to learn: the claim's
entropy under the model (a claim the model is already sure of teaches nothing and could not be tested), weighted
by the size of the predicted effect. The best few that pass the guards become hypotheses; the rationale says
what the model predicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from planners.bo.posterior import Surrogate
from planners.hypotheses.base import Abduction, AbductionRequest, Draft
from planners.hypotheses.claims import (
    AttainabilityClaim,
    Claim,
    Condition,
    ContrastClaim,
    EffectClaim,
    RegionClaim,
)
from planners.hypotheses.credence import ClaimEvaluation, ReferenceSet, binary_entropy, evaluate_claims
from planners.hypotheses.guards import GuardError, SafetyRules, check_claim
from planners.space import CategoricalParameter, ContinuousParameter, MoleculeParameter, Objective

# Candidates this sure either way are not proposed: there is nothing left to test.
UNDECIDED = (0.05, 0.95)


class ModelAbductor:
    source = "model"

    def __init__(self, n_samples: int = 512, safety: SafetyRules | None = None) -> None:
        self.n_samples = n_samples
        self.safety = safety

    def propose(
        self, request: AbductionRequest, surrogate: Surrogate, widen: Mapping[str, float] | None = None
    ) -> Abduction:
        """`widen`: per objective, how much to widen the posterior (see `credence.evaluate_claims`)."""
        space = request.problem.space
        rng = np.random.default_rng(request.seed)
        reference = ReferenceSet(space, surrogate, rng)
        candidates: list[Claim] = []
        for objective in request.problem.objectives:
            candidates += _contrasts(objective.name, surrogate, reference)
            candidates += _effects(objective.name, surrogate, reference)
            candidates += _regions(objective.name, surrogate, reference)
            candidates += _attainability(objective, request)
        accepted: list[Claim] = []
        for claim in candidates:
            try:
                accepted.append(check_claim(claim, request.problem, request.ledger, self.safety))
            except GuardError:
                continue  # the model's own candidates that repeat the ledger are simply not proposed
        if not accepted:
            return Abduction()
        evaluations, _ = evaluate_claims(
            surrogate, dict(enumerate(accepted)), space, request.observations, self.n_samples, request.seed, (), widen
        )
        scale = _objective_scale(request, accepted)
        scored = sorted(
            (
                (_score(evaluations[i], scale.get(claim.objective, 1.0)), i)
                for i, claim in enumerate(accepted)
                if UNDECIDED[0] < evaluations[i].credence < UNDECIDED[1] and not evaluations[i].demonstrated
            ),
            reverse=True,
        )
        drafts: list[Draft] = []
        subjects: set[tuple[str, str]] = set()
        for _, i in scored:
            claim = accepted[i]
            topic = (claim.kind, ",".join(sorted(claim.parameters())))
            if topic in subjects:
                continue  # one claim per kind and parameter per round keeps the ledger varied
            subjects.add(topic)
            drafts.append(Draft(claim=claim, rationale=_rationale(evaluations[i]), source=self.source))
            if len(drafts) == request.max_new:
                break
        return Abduction(drafts=drafts)


def _score(evaluation: ClaimEvaluation, scale: float) -> float:
    entropy = float(binary_entropy(evaluation.credence))
    if evaluation.quantity.startswith(("mean difference", "mean change")):
        return entropy * (0.25 + min(abs(evaluation.mean) / scale, 2.0))
    return entropy * 0.5


def _rationale(evaluation: ClaimEvaluation) -> str:
    return (
        f"the fitted model gives it credence {evaluation.credence:.2f}; "
        f"{evaluation.quantity}: {evaluation.mean:.3g} ± {evaluation.std:.2g}"
    )


def _objective_scale(request: AbductionRequest, claims: Sequence[Claim]) -> dict[str, float]:
    scale: dict[str, float] = {}
    for name in {c.objective for c in claims}:
        values = [o.values[name] for o in request.observations if o.feasible and name in o.values]
        spread = float(np.std(values)) if len(values) > 1 else 0.0
        scale[name] = spread if spread > 0 else 1.0
    return scale


def _level_means(objective: str, surrogate: Surrogate, reference: ReferenceSet, name: str, levels: list) -> np.ndarray:
    contexts = reference.contexts(name, {})[:64]
    points = [reference.space.setting(c, name, level) for level in levels for c in contexts]
    mean, _ = surrogate.predict(objective, points)
    return mean.reshape(len(levels), len(contexts)).mean(axis=1)


def _contrasts(objective: str, surrogate: Surrogate, reference: ReferenceSet) -> list[Claim]:
    claims: list[Claim] = []
    for p in reference.space.parameters:
        if not isinstance(p, CategoricalParameter | MoleculeParameter):
            continue
        levels = list(p.values)
        order = np.argsort(-_level_means(objective, surrogate, reference, p.name, levels))
        ranked = [levels[i] for i in order]
        pairs = {(ranked[0], ranked[1]), (ranked[0], ranked[-1])}
        if len(ranked) > 2:
            pairs.add((ranked[1], ranked[2]))
        for better, worse in sorted(pairs):
            claims.append(ContrastClaim(objective=objective, parameter=p.name, better=better, worse=worse))
    return claims


def _effects(objective: str, surrogate: Surrogate, reference: ReferenceSet) -> list[Claim]:
    claims: list[Claim] = []
    for p in reference.space.parameters:
        if not p.is_numeric:
            continue
        values = list(p.bounds) if isinstance(p, ContinuousParameter) else sorted(float(v) for v in p.values)
        low, high = float(values[0]), float(values[-1])
        middle = _middle(p, values)
        steps = [(low, high)] + ([(low, middle), (middle, high)] if middle is not None else [])
        for a, b in steps:
            means = _level_means(objective, surrogate, reference, p.name, [a, b])
            direction = "raises" if means[1] > means[0] else "lowers"
            claims.append(
                EffectClaim(objective=objective, parameter=p.name, from_value=a, to_value=b, direction=direction)
            )
    return claims


def _middle(p: object, values: list[float]) -> float | None:
    if isinstance(p, ContinuousParameter):
        return (values[0] + values[-1]) / 2
    if len(values) >= 3:
        return float(values[len(values) // 2])
    return None


def _regions(objective: str, surrogate: Surrogate, reference: ReferenceSet) -> list[Claim]:
    points = reference.for_optimum(objective)
    mean, _ = surrogate.predict(objective, points)
    best = points[int(np.argmax(mean * surrogate.signs[objective]))]
    claims: list[Claim] = []
    for p in reference.space.parameters:
        value = best[p.name]
        if p.is_numeric:
            values = list(p.bounds) if isinstance(p, ContinuousParameter) else sorted(float(v) for v in p.values)
            middle = (values[0] + values[-1]) / 2
            condition = (
                Condition(parameter=p.name, at_least=middle)
                if value >= middle
                else Condition(parameter=p.name, at_most=middle)
            )
        else:
            condition = Condition(parameter=p.name, levels=[value])
        claims.append(RegionClaim(objective=objective, where=[condition]))
    return claims


def _attainability(objective: Objective, request: AbductionRequest) -> list[Claim]:
    """That the objective can reach its target (the question the campaign asks), or, without a target, beat the
    best result so far by a tenth of the range seen. A stated target also keeps the claim within what the
    scientist knows is possible (a yield above 100 % is not), which the model cannot know."""
    name, maximize = objective.name, objective.direction == "maximize"
    values = [o.values[name] for o in request.observations if o.feasible and name in o.values]
    if len(values) < 2:
        return []
    best = max(values) if maximize else min(values)
    if objective.target is not None:
        if objective.reached(best):
            return []
        target = objective.target
    else:
        step = 0.1 * (max(values) - min(values))
        if step <= 0:
            return []
        target = _round(best + step if maximize else best - step)
    return [AttainabilityClaim(objective=name, value=target, relation="above" if maximize else "below")]


def _round(value: float) -> float:
    """Three significant figures: a person reads 'yield can go above 87.4', not 87.41736."""
    if value == 0:
        return 0.0
    digits = 2 - math.floor(math.log10(abs(value)))
    return round(value, digits)


__all__ = ["ModelAbductor"]
