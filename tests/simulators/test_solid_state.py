"""The solid-state surrogate: conservation, the shape of its chemistry, and the patterns it diffracts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from simulators.solid_state import PHASES, PRECURSOR_SETS, REACTIONS, TARGET, diffract, fire, react


def _atoms(formula: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for element, count in re.findall(r"([A-Z][a-z]?)([0-9.]*)", formula):
        counts[element] = counts.get(element, 0.0) + (float(count) if count else 1.0)
    return counts


def _cations(amounts: dict[str, float]) -> dict[str, float]:
    out = {"Y": 0.0, "Ba": 0.0, "Cu": 0.0}
    for name, amount in amounts.items():
        for element, count in _atoms(PHASES[name].formula).items():
            if element in out:
                out[element] += amount * count
    return out


def test_every_reaction_balances_its_cations() -> None:
    for reaction in REACTIONS:
        assert _cations(dict(reaction.reactants)) == pytest.approx(_cations(dict(reaction.products))), str(reaction)


@pytest.mark.parametrize("name", list(PRECURSOR_SETS))
def test_firing_keeps_the_cations_and_every_set_is_weighed_for_the_target(name: str) -> None:
    precursors = dict(PRECURSOR_SETS[name])
    assert _cations(precursors) == pytest.approx({"Y": 1.0, "Ba": 2.0, "Cu": 3.0})
    after = react(precursors, [(800.0, 6.0)])
    assert _cations(after) == pytest.approx({"Y": 1.0, "Ba": 2.0, "Cu": 3.0}, rel=1e-9)
    fractions = fire(precursors, 800.0, 6.0)
    assert set(fractions) == set(PHASES)
    assert sum(fractions.values()) == pytest.approx(1.0)


def test_the_carbonate_does_not_react_at_600_c_but_the_peroxide_does() -> None:
    carbonate = fire(PRECURSOR_SETS["Y2O3+BaCO3+CuO"], 600.0, 4.0)
    peroxide = fire(PRECURSOR_SETS["Y2O3+BaO2+CuO"], 600.0, 4.0)
    assert carbonate[TARGET] < 0.01 and carbonate["BaCuO2"] < 0.01  # a failed synthesis: precursors only
    assert peroxide["BaCuO2"] > 0.05  # BaO2 meets CuO hundreds of degrees before BaCO3 gives up its CO2


def test_hotter_is_not_always_better_the_green_phase_traps_the_yttrium() -> None:
    recipe = PRECURSOR_SETS["Y2O3+BaO2+CuO"]
    at_775, at_900 = fire(recipe, 775.0, 12.0), fire(recipe, 900.0, 12.0)
    assert at_775[TARGET] > at_900[TARGET] + 0.1
    assert at_900["Y2BaCuO5"] > at_775["Y2BaCuO5"]
    assert fire(recipe, 775.0, 12.0)[TARGET] > fire(recipe, 775.0, 2.0)[TARGET]  # and time helps


def test_a_slower_ramp_spends_longer_on_the_way_up() -> None:
    recipe = PRECURSOR_SETS["Y2O3+BaO2+CuO"]
    assert fire(recipe, 700.0, 0.0, ramp_c_per_min=1.0)[TARGET] > fire(recipe, 700.0, 0.0, ramp_c_per_min=10.0)[TARGET]


@pytest.mark.parametrize(
    ("precursors", "temperature", "hold", "field"),
    [
        ({"Unobtainium": 1.0}, 800.0, 1.0, "precursors"),
        ({"CuO": -1.0}, 800.0, 1.0, "precursors.CuO"),
        ({"CuO": 1.0}, float("nan"), 1.0, "temperature_c"),
        ({"CuO": 1.0}, 800.0, -2.0, "hold_h"),
    ],
)
def test_bad_input_names_its_field(precursors: dict[str, float], temperature: float, hold: float, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(field)}"):
        fire(precursors, temperature, hold)


def test_a_pattern_has_each_phase_where_its_card_says_and_the_seed_fixes_the_noise() -> None:
    two_theta = np.arange(10.0, 80.0, 0.02)
    pure_target = diffract({TARGET: 1.0}, two_theta, seed=3)
    assert np.array_equal(pure_target, diffract({TARGET: 1.0}, two_theta, seed=3))
    assert not np.array_equal(pure_target, diffract({TARGET: 1.0}, two_theta, seed=4))
    assert abs(two_theta[int(np.argmax(pure_target))] - 32.5) < 0.1  # the (103)/(110) doublet's stronger line
    cuo = diffract({"CuO": 1.0}, two_theta, seed=3)
    assert abs(two_theta[int(np.argmax(cuo))] - 35.5) < 0.1
    # Half and half: both phases show, each at about half its pure height over the background.
    mixed = diffract({TARGET: 0.5, "CuO": 0.5}, two_theta, seed=3)
    at = int(np.argmin(abs(two_theta - 35.5)))
    assert 0.35 < (mixed[at] - 60) / (cuo[at] - 60) < 0.65
