"""The spread factor of stated predictions: read from the campaign's own record of predictions and measurements."""

from __future__ import annotations

import numpy as np
import pytest

from planners.base import Observation, Prediction
from planners.calibration import UNCHECKED_SPREAD, spread, standardized_errors


def _record(errors: np.ndarray, spread_then: float = 1.0) -> list[Observation]:
    """Results whose measurement missed the prediction by `errors` model-sds (stated with `spread_then`)."""
    return [
        Observation(
            parameters={"x": float(i)},
            values={"y": 10.0 + float(e) * 2.0},
            predicted={"y": Prediction(mean=10.0, std=2.0 * spread_then, spread=spread_then)},
        )
        for i, e in enumerate(errors)
    ]


def test_a_calibrated_model_keeps_its_sd() -> None:
    z = np.random.default_rng(0).standard_normal(2000)
    assert spread(standardized_errors(_record(z), "y")) == pytest.approx(1.0, abs=0.06)


def test_an_overconfident_model_is_widened_by_how_far_its_errors_reach() -> None:
    z = 2.5 * np.random.default_rng(1).standard_normal(2000)
    factor = spread(standardized_errors(_record(z), "y"))
    assert factor == pytest.approx(2.5, rel=0.06)
    # the widened intervals hold their share: about 80 % of the errors within 1.28 of the stated sd
    assert np.mean(np.abs(z) <= 1.2816 * factor) == pytest.approx(0.8, abs=0.01)


def test_errors_are_measured_against_the_models_own_sd_not_the_widened_one() -> None:
    """A campaign whose predictions were already stated 3x wider keeps the factor: measured against the stated sd
    the same errors would read as calibrated, and the next factor would fall back to 1."""
    z = 3.0 * np.random.default_rng(2).standard_normal(500)
    plain = spread(standardized_errors(_record(z), "y"))
    widened = spread(standardized_errors(_record(z, spread_then=3.0), "y"))
    assert widened == pytest.approx(plain)
    assert widened > 2.5


def test_one_wild_miss_does_not_widen_every_interval() -> None:
    z = np.concatenate([np.random.default_rng(3).standard_normal(40), [60.0]])
    assert spread(standardized_errors(_record(z), "y")) < 1.3


def test_before_any_check_the_unchecked_factor_applies() -> None:
    unpredicted = [Observation(parameters={"x": 1.0}, values={"y": 3.0})]
    assert standardized_errors(unpredicted, "y") == []
    assert spread([]) == UNCHECKED_SPREAD


def test_infeasible_results_and_other_objectives_are_not_counted() -> None:
    record = [
        Observation(parameters={"x": 1.0}, values={}, feasible=False, predicted={"y": Prediction(1.0, 1.0)}),
        Observation(parameters={"x": 2.0}, values={"z": 5.0}, predicted={"z": Prediction(1.0, 2.0)}),
    ]
    assert standardized_errors(record, "y") == []
    assert standardized_errors(record, "z") == [2.0]
