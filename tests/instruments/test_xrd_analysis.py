"""Phase identification of powder patterns (`xrd_phase_fractions`): weight fractions of known mixtures come back,
a phase the cards lack shows in the fit's R factor, and bad arguments are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.analysis import AnalysisError, load_analysis
from instruments.arrays import ArrayData, Axis
from instruments.errors import InvalidAction
from instruments.powder import CARDS, molar_mass
from simulators.solid_state import diffract

TWO_THETA = np.round(np.arange(10.0, 80.0001, 0.02), 6)
ANALYSIS = load_analysis("xrd_phase_fractions")


def _pattern(counts: np.ndarray) -> ArrayData:
    return ArrayData.of(TWO_THETA.tolist(), counts.tolist(), Axis("two_theta", "deg"), Axis("intensity", "counts"))


@pytest.mark.parametrize(
    "mixture",
    [
        {"YBa2Cu3O6.5": 1.0},
        {"YBa2Cu3O6.5": 0.6, "BaCuO2": 0.25, "Y2BaCuO5": 0.15},
        {"Y2O3": 0.15, "BaCO3": 0.53, "CuO": 0.32},  # an unreacted mix: a failed synthesis
        {"YBa2Cu3O6.5": 0.05, "Y2Cu2O5": 0.45, "BaCuO2": 0.5},
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_known_mixtures_come_back(mixture: dict[str, float], seed: int) -> None:
    result = ANALYSIS.run({"pattern": _pattern(diffract(mixture, TWO_THETA, seed))}, {})
    for name in CARDS:
        assert result[name.replace(".", "_")] == pytest.approx(mixture.get(name, 0.0), abs=0.03), name
    assert sum(result[name.replace(".", "_")] for name in CARDS) == pytest.approx(1.0)
    assert result["r_wp"] < 0.15


def test_a_phase_without_a_card_shows_in_r_wp() -> None:
    known = diffract({"CuO": 1.0}, TWO_THETA, 0)
    alien = known + 3000 * np.exp(-0.5 * ((TWO_THETA - 44.0) / 0.08) ** 2)  # a strong line no card has
    assert (
        ANALYSIS.run({"pattern": _pattern(alien)}, {})["r_wp"]
        > 2 * ANALYSIS.run({"pattern": _pattern(known)}, {})["r_wp"]
    )


def test_the_fit_range_is_checked() -> None:
    with pytest.raises(AnalysisError, match="band 85-88 deg holds no point"):
        ANALYSIS.run({"pattern": _pattern(diffract({"CuO": 1.0}, TWO_THETA, 0))}, {"low_deg": 85, "high_deg": 88})
    with pytest.raises(InvalidAction, match="xrd_phase_fractions: unknown argument"):
        ANALYSIS.bind({"phase": 1})


def test_molar_masses_are_those_of_the_formulas() -> None:
    assert molar_mass("YBa2Cu3O6.5") == pytest.approx(88.906 + 2 * 137.327 + 3 * 63.546 + 6.5 * 15.999)
    with pytest.raises(ValueError, match="unknown element Xx"):
        molar_mass("Xx2O3")
