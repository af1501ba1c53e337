"""Deduction: which experiments would best tell whether a claim is true.

An experiment at `x` discriminates a claim when its outcome `y(x)` is likely to differ depending on whether the
claim is true. We measure that as the mutual information between the claim's truth `C` and `y(x)`, i.e. the
expected reduction of the claim's entropy once `y(x)` is known, estimated from the same joint posterior samples
that give the credence: split the samples by whether the claim holds in them, and compare the spread of `y(x)`
within each group with its spread overall. With Gaussian approximations of the three distributions,

    I(C; y) ≈ ½ log σ²(y) − p ½ log σ²(y | C) − (1 − p) ½ log σ²(y | ¬C),   σ² including measurement noise,

which is never negative (total variance ≥ mean within-group variance, and log is concave) and is capped at the
claim's entropy H(p). An experiment whose outcome the claim does not predict (same spread either way) scores
zero; one that would land in a different place depending on the truth scores up to H(p).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from planners.hypotheses.credence import ClaimEvaluation, binary_entropy
from planners.space import Point


@dataclass(frozen=True)
class TestChoice:
    """An experiment chosen to test one hypothesis."""

    hypothesis: int
    point: Point
    information_bits: float  # expected reduction of the claim's entropy
    predicted_mean: float  # the objective the model predicts there
    predicted_std: float


def information_bits(holds: np.ndarray, outcome_samples: np.ndarray, noise_variance: float) -> np.ndarray:
    """Expected information (bits) about a claim from measuring the outcome at each candidate.

    `holds`: `S` booleans (the claim in each joint sample); `outcome_samples`: `S x m` latent values at the `m`
    candidates, from the same joint draw. Returns `m` values in [0, H(p)].
    """
    p = float(holds.mean())
    entropy = float(binary_entropy(p))
    if entropy < 1e-6 or holds.sum() < 2 or (~holds).sum() < 2:
        return np.zeros(outcome_samples.shape[1])
    total = outcome_samples.var(axis=0) + noise_variance
    within_true = outcome_samples[holds].var(axis=0) + noise_variance
    within_false = outcome_samples[~holds].var(axis=0) + noise_variance
    floor = max(noise_variance, 1e-12)
    nats = 0.5 * (
        np.log(np.maximum(total, floor))
        - p * np.log(np.maximum(within_true, floor))
        - (1 - p) * np.log(np.maximum(within_false, floor))
    )
    return np.clip(nats / np.log(2), 0.0, entropy)


def choose_tests(
    evaluations: Mapping[int, ClaimEvaluation],
    objectives: Mapping[int, str],
    candidates: Sequence[Point],
    candidate_samples: Mapping[str, np.ndarray],
    noise_variance: Mapping[str, float],
    n_tests: int,
) -> list[TestChoice]:
    """Pick `n_tests` distinct candidates, each the most informative one for a hypothesis.

    Hypotheses take turns, most informative first, so a batch spreads over the open claims instead of spending
    every slot on the one the model is least sure of; a hypothesis gets a second slot only after each other has
    had one. `objectives[h]` names the objective hypothesis `h` is about.
    """
    if n_tests <= 0 or not candidates:
        return []
    gains = {
        h: information_bits(e.holds, candidate_samples[objectives[h]], noise_variance[objectives[h]])
        for h, e in evaluations.items()
        if not e.demonstrated
    }
    gains = {h: g for h, g in gains.items() if g.max() > 1e-3}
    taken: set[int] = set()
    chosen: list[TestChoice] = []
    while len(chosen) < n_tests and gains:
        order = sorted(gains, key=lambda h: -_best_free(gains[h], taken)[1])
        progressed = False
        for h in order:
            if len(chosen) == n_tests:
                break
            index, bits = _best_free(gains[h], taken)
            if index < 0 or bits <= 1e-3:
                continue
            samples = candidate_samples[objectives[h]][:, index]
            taken.add(index)
            chosen.append(TestChoice(h, candidates[index], float(bits), float(samples.mean()), float(samples.std())))
            progressed = True
        if not progressed:
            break
    return chosen


def _best_free(gain: np.ndarray, taken: set[int]) -> tuple[int, float]:
    masked = gain.copy()
    if taken:
        masked[list(taken)] = -1.0
    index = int(np.argmax(masked))
    return (index, float(masked[index])) if masked[index] >= 0 else (-1, 0.0)
