"""Whether a typed hypothesis is true of a full data table: the ground truth the hypothesis benchmark scores against.

A lookup campaign's table holds every point of its space, so each claim can be decided exactly, with the same
meaning the credences give it (`planners/hypotheses/claims.py`, `planners/hypotheses/credence.py`):

- contrast: the mean objective at `parameter = better` beats the mean at `parameter = worse`, over the rows that
  match the claim's context, *paired*: only settings of the other parameters that the table holds at both levels
  count (on a full-factorial table that is the plain mean over all rows of each level);
- effect: the mean at `to_value` minus the mean at `from_value` (each within 1 % of the parameter's range in the
  table) has the claimed sign (`raises`: > 0, `lowers`: < 0), paired and in context the same way;
- region: the table's best row (max for maximize, min for minimize) satisfies the conditions; when several rows
  tie at the best value, the claim is true if any of them does;
- attainability: the table's max passes the value (`above`), or its min does (`below`).

`claim_is_true` gives the verdict; `claim_truth` gives it with the quantities it was decided on (the true means,
the best row), which is what a wrong verdict of the ledger is diagnosed with.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from planners.hypotheses.claims import AttainabilityClaim, Claim, ContrastClaim, EffectClaim, RegionClaim

# Two numeric values are the same setting when within this share of the parameter's range in the table.
TOLERANCE = 0.01
# Rows within this of the table's best value tie with it.
TIE = 1e-9


@dataclass
class Truth:
    """A claim decided on a full table, with what decided it."""

    holds: bool
    detail: dict[str, Any] = field(default_factory=dict)


def claim_is_true(
    claim: Claim, points: Sequence[Mapping[str, Any]], values: Sequence[float], direction: str = "maximize"
) -> bool:
    """Whether `claim` holds of the table given as `points` and their objective `values` (one per point).

    `direction` is the objective's (`maximize` or `minimize`); it decides which row is the best for a region.
    Raises ValueError when the table cannot decide the claim (no rows at a level the claim compares).
    """
    return claim_truth(claim, points, values, direction).holds


def claim_truth(
    claim: Claim, points: Sequence[Mapping[str, Any]], values: Sequence[float], direction: str = "maximize"
) -> Truth:
    """`claim_is_true` with the true quantities behind the verdict (means and pairs, the best rows)."""
    if len(points) != len(values):
        raise ValueError(f"{len(points)} points but {len(values)} values")
    if not points:
        raise ValueError("an empty table decides nothing")
    if isinstance(claim, ContrastClaim | EffectClaim):
        return _paired(claim, points, values)
    if isinstance(claim, RegionClaim):
        return _region(claim, points, values, direction)
    if isinstance(claim, AttainabilityClaim):
        return _attainability(claim, values)
    raise TypeError(f"not a claim: {claim!r}")


def _ranges(points: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Range of each numeric parameter in the table (0 for a parameter with one value)."""
    ranges: dict[str, float] = {}
    for name in points[0]:
        numbers = [p[name] for p in points if _is_number(p[name])]
        if len(numbers) == len(points):
            ranges[name] = float(max(numbers)) - float(min(numbers))
    return ranges


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any, span: float | None) -> bool:
    if span is None or not (_is_number(a) and _is_number(b)):
        return str(a) == str(b)
    return abs(float(a) - float(b)) <= TOLERANCE * span + 1e-12


def _key(value: Any) -> Hashable:
    return float(f"{float(value):.9g}") if _is_number(value) else str(value)


def _paired(claim: ContrastClaim | EffectClaim, points: Sequence[Mapping[str, Any]], values: Sequence[float]) -> Truth:
    ranges = _ranges(points)
    name = claim.parameter
    span = ranges.get(name)
    if isinstance(claim, ContrastClaim):
        first, second = claim.better, claim.worse
    else:
        first, second = claim.to_value, claim.from_value
    # Per setting of the other parameters: the values at the first and the second level (replicates averaged).
    at_first: dict[tuple, list[float]] = {}
    at_second: dict[tuple, list[float]] = {}
    for point, value in zip(points, values, strict=True):
        if not all(_same(point[k], v, ranges.get(k)) for k, v in claim.context.items()):
            continue
        rest = tuple(sorted((k, _key(v)) for k, v in point.items() if k != name))
        if _same(point[name], first, span):
            at_first.setdefault(rest, []).append(float(value))
        elif _same(point[name], second, span):
            at_second.setdefault(rest, []).append(float(value))
    if not at_first or not at_second:
        missing = first if not at_first else second
        raise ValueError(f"no row of the table has {name} = {missing} in the claim's context")
    pairs = sorted(set(at_first) & set(at_second))
    paired = bool(pairs)
    if paired:
        high = [_mean(at_first[k]) for k in pairs]
        low = [_mean(at_second[k]) for k in pairs]
    else:  # nothing to pair: fall back to the plain means of the two levels
        high = [v for vs in at_first.values() for v in vs]
        low = [v for vs in at_second.values() for v in vs]
    mean_first, mean_second = _mean(high), _mean(low)
    difference = mean_first - mean_second
    if isinstance(claim, ContrastClaim):
        holds = difference > 0
        detail = {"mean_better": mean_first, "mean_worse": mean_second}
    else:
        holds = difference > 0 if claim.direction == "raises" else difference < 0
        detail = {"mean_to": mean_first, "mean_from": mean_second}
    detail.update(
        difference=difference,
        pairs=len(pairs) if paired else 0,
        rows_first=sum(len(v) for v in at_first.values()),
        rows_second=sum(len(v) for v in at_second.values()),
        # share of paired settings in which the first level wins: how clear-cut the true effect is
        wins=float(sum(h > lo for h, lo in zip(high, low, strict=True)) / len(pairs)) if paired else math.nan,
    )
    return Truth(bool(holds), detail)


def _region(claim: RegionClaim, points: Sequence[Mapping[str, Any]], values: Sequence[float], direction: str) -> Truth:
    maximize = not direction.startswith("min")
    best = max(values) if maximize else min(values)
    tied = [i for i, v in enumerate(values) if abs(v - best) <= TIE]
    inside = [i for i, p in enumerate(points) if claim.holds(dict(p))]
    best_inside = (max if maximize else min)(values[i] for i in inside) if inside else math.nan
    holds = any(claim.holds(dict(points[i])) for i in tied)
    return Truth(
        holds,
        {
            "best": float(best),
            "best_points": [dict(points[i]) for i in tied[:5]],
            "ties": len(tied),
            "best_inside": float(best_inside),
            "rows_inside": len(inside),
        },
    )


def _attainability(claim: AttainabilityClaim, values: Sequence[float]) -> Truth:
    if claim.relation == "above":
        extreme = max(values)
        holds = extreme > claim.value
    else:
        extreme = min(values)
        holds = extreme < claim.value
    return Truth(bool(holds), {"extreme": float(extreme), "value": claim.value})


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))
