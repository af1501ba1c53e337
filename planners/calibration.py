"""How far to trust a model's standard deviations: calibration against the campaign's own track record.

Why the Bayesian planner's raw predictions are over-confident (measured on the planner suite, benchmarks/RESULTS.md
"Calibration"): at the results it was fitted on, the GP is calibrated (its leave-one-out errors and its sequential
one-step-ahead errors are about one sd), but at the points it *proposes* the errors are two to three times its sd.
The acquisition sends experiments exactly where the model is most wrong in the hopeful direction and where it has
least data, and the hyper-parameters, a point estimate from a handful of results, understate how little is known
there. No prior on the noise or the length-scales removes that selection; a record of how the model's predictions
at its own proposals fared does measure it.

So a stated sd is the model's sd times a spread factor read from the predictions already checked in this campaign:
the 80th percentile of |measured − predicted| / sd, divided by the 80th percentile of |z| for a standard normal
(1.2816), so that a calibrated model gets 1. A quantile, not the root mean square: a reaction that fails outright
would otherwise widen every interval of the campaign; the 80th percentile, not the median, because the errors are
heavier-tailed than a normal's, and a median-based factor leaves too few measurements within two sd. Before any
prediction has been checked, the factor is `UNCHECKED_SPREAD`.

The rule and its constants were chosen by leave-one-problem-out on the planner suite (`benchmarks/calibration_loo.py`,
table in benchmarks/RESULTS.md, nine seeds of each of the suite's ten problems): this rule was chosen on the other
nine problems in six of the ten folds (and the same statistic in eight), and the rules chosen put each held-out
problem's measurements 60-82 % within one sd and 81-92 % within two.
"""

from __future__ import annotations

from collections.abc import Sequence

from planners.base import Observation

# The factor before any prediction of the campaign has been checked. The first model-based batch is the most
# over-confident of all (few results, hyper-parameters barely identified): leave-one-problem-out chose 1.5.
UNCHECKED_SPREAD = 1.5
# The 80th percentile of |z| for a standard normal z.
_Z80 = 1.2816
# Bounds on the factor: a model can also be under-confident (an easy response surface); the floor keeps one odd
# record from making intervals vanish.
_LOWEST, _HIGHEST = 0.5, 10.0


def standardized_errors(observations: Sequence[Observation], objective: str) -> list[float]:
    """(measured − predicted) / the model's own sd of `objective`, for every result that carried a prediction of it.

    The model's own sd is the stated one divided by the spread it was stated with: the factor is a correction of
    the model, and measuring it against already-corrected intervals would undo it the next time."""
    errors = []
    for o in observations:
        predicted = o.predicted.get(objective)
        if o.feasible and predicted is not None and predicted.std > 0 and objective in o.values:
            own_std = predicted.std / predicted.spread
            errors.append((o.values[objective] - predicted.mean) / own_std)
    return errors


def spread(errors: Sequence[float]) -> float:
    """The factor by which to multiply the model's sd, given its standardised errors so far."""
    if not errors:
        return UNCHECKED_SPREAD
    size = sorted(abs(e) for e in errors)
    return min(_HIGHEST, max(_LOWEST, _quantile(size, 0.8) / _Z80))


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default), on a sorted sequence."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
