"""Sobol points for reference sets and test candidates: no balance warning on stderr, the same points as before."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import qmc

from planners.sampling import sobol_points


@pytest.mark.parametrize("n", [1, 5, 600, 2400, 4096])
def test_any_count_draws_without_the_balance_warning(n: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's "require n to be a power of 2" would raise here
        points = sobol_points(6, n, np.random.default_rng(3))
    assert points.shape == (n, 6)
    assert ((points >= 0) & (points < 1)).all()


def test_the_points_are_those_scipy_gives_for_the_same_count() -> None:
    # What the ledger drew before (Sobol.random(2400), which warned): decisions recorded then replay unchanged.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = qmc.Sobol(d=6, scramble=True, seed=np.random.default_rng(11)).random(2400)
    assert np.array_equal(sobol_points(6, 2400, np.random.default_rng(11)), before)


def test_no_points_for_a_count_of_zero() -> None:
    assert sobol_points(3, 0, 0).shape == (0, 3)
