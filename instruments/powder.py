"""Reference cards of powder X-ray diffraction: where each phase's peaks lie and how strongly it diffracts.

A diffractometer's phase identification matches a measured pattern against such cards (the ICDD's Powder
Diffraction File, or patterns computed from the ICSD or the Materials Project). These cards are for the phases of
the yttrium barium cuprate system (the A-Lab template's chemistry, `examples/alab_synthesis`), for Cu K-alpha
radiation (1.5406 A), 10-80 degrees 2-theta. They are approximate: the positions are those of the strongest
reflections as published for each structure, rounded to 0.1 degree and, where only lattice parameters were at hand,
computed from them (Bragg's law); the relative intensities are rounded, and weaker reflections are left out. The
reference intensity ratio (RIR, I/I_corundum of the strongest peak in a 50:50 weight mixture with corundum) is a
rough value of the kind a card lists. They serve an offline template and its twin, not a real refinement: a lab
replaces them with its own database's cards.

Intensities of a mixture follow the RIR method: the strongest peak of phase p, in a sample holding weight fraction
w_p of it, reads in proportion to w_p * RIR_p. So a pattern's least-squares decomposition into unit-scaled cards
gives coefficients c_p = k w_p RIR_p, and the weight fractions follow as (c_p / RIR_p) normalised to one.

This module is plain data and the peak shape: the analysis (`instruments.analysis`) and the solid-state simulator
(`simulators.solid_state`) both read it, so a twin's crystal diffracts where the analysis looks for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

WAVELENGTH_A = 1.5406  # Cu K-alpha 1
ATOMIC_MASS = {"Y": 88.906, "Ba": 137.327, "Cu": 63.546, "O": 15.999, "C": 12.011, "H": 1.008, "N": 14.007}
_ELEMENT = re.compile(r"([A-Z][a-z]?)([0-9]*\.?[0-9]*)")


def molar_mass(formula: str) -> float:
    """g/mol of a formula such as 'YBa2Cu3O6.5' (no brackets); ValueError naming an element it does not know."""
    total, seen = 0.0, ""
    for element, count in _ELEMENT.findall(formula):
        if element not in ATOMIC_MASS:
            raise ValueError(f"formula {formula}: unknown element {element}")
        total += ATOMIC_MASS[element] * (float(count) if count else 1.0)
        seen += element + count
    if seen != formula:
        raise ValueError(f"formula {formula}: cannot be read (elements and counts only)")
    return total


def atoms(formula: str) -> dict[str, float]:
    """Atoms of each element in one formula unit ('Y2Cu2O5' -> {'Y': 2, 'Cu': 2, 'O': 5}); ValueError as
    `molar_mass`."""
    molar_mass(formula)  # refuses what it cannot read
    counts: dict[str, float] = {}
    for element, count in _ELEMENT.findall(formula):
        counts[element] = counts.get(element, 0.0) + (float(count) if count else 1.0)
    return counts


def balance(precursors: list[str], target: str, target_mmol: float) -> dict[str, float]:
    """mmol of each precursor that carry the cations of `target_mmol` of the target (oxygen and carbon come and go
    as O2 and CO2 with the furnace's air), as a synthesis planner weighs out a recipe. ValueError when they cannot:
    a cation of the target none of them has, one the target has not, more than one way to match (two sources of a
    cation and nothing to tell them apart), or no non-negative amounts that match."""
    gases = {"O", "C", "H", "N"}
    wanted = {e: n * target_mmol for e, n in atoms(target).items() if e not in gases}
    given = {name: {e: n for e, n in atoms(name).items() if e not in gases} for name in precursors}
    elements = sorted(set(wanted) | {e for cations in given.values() for e in cations})
    missing = [e for e in wanted if not any(e in cations for cations in given.values())]
    if missing:
        raise ValueError(f"{'+'.join(precursors)} cannot give {target}: none of them has {', '.join(missing)}")
    extra = [e for e in elements if e not in wanted]
    if extra:
        raise ValueError(f"{'+'.join(precursors)} cannot give {target}: {target} has no {', '.join(extra)}")
    matrix = np.array([[given[name].get(e, 0.0) for name in precursors] for e in elements])
    if np.linalg.matrix_rank(matrix) < len(precursors):
        raise ValueError(f"{'+'.join(precursors)} balance {target} in more than one way: name fewer precursors")
    amounts, *_ = np.linalg.lstsq(matrix, np.array([wanted[e] for e in elements]), rcond=None)
    if (amounts < -1e-9).any() or not np.allclose(matrix @ amounts, [wanted[e] for e in elements], atol=1e-9):
        raise ValueError(f"{'+'.join(precursors)} cannot give {target} in its cation ratio")
    return {name: max(0.0, float(a)) for name, a in zip(precursors, amounts, strict=True)}


@dataclass(frozen=True)
class Card:
    """One phase's reference: its formula, peaks as (2-theta in degrees for Cu K-alpha, intensity relative to the
    strongest = 100), and its reference intensity ratio."""

    name: str
    formula: str
    peaks: tuple[tuple[float, float], ...]
    rir: float

    @property
    def molar_mass(self) -> float:
        return molar_mass(self.formula)


CARDS: dict[str, Card] = {
    card.name: card
    for card in (
        # The target: oxygen-deficient YBa2Cu3O(6+x), orthorhombic near x = 0.5, a 3.84, b 3.88, c 11.7 A.
        Card(
            "YBa2Cu3O6.5",
            "YBa2Cu3O6.5",
            (
                (22.8, 10),
                (27.6, 6),
                (32.5, 100),
                (32.8, 55),
                (38.5, 15),
                (40.4, 10),
                (46.6, 30),
                (47.5, 15),
                (52.6, 8),
                (58.2, 25),
                (58.8, 12),
                (68.7, 10),
            ),
            2.5,
        ),
        # Cubic bixbyite, a 10.60 A.
        Card(
            "Y2O3",
            "Y2O3",
            ((20.5, 15), (29.2, 100), (33.8, 25), (35.9, 6), (43.5, 8), (48.5, 35), (57.6, 25), (59.1, 5)),
            6.0,
        ),
        # Witherite, orthorhombic.
        Card(
            "BaCO3",
            "BaCO3",
            ((19.6, 6), (23.9, 100), (24.3, 50), (27.7, 6), (33.7, 25), (34.6, 35), (42.0, 25), (44.9, 15), (46.9, 20)),
            3.5,
        ),
        # Tetragonal I4/mmm, a 3.81, c 6.84 A (positions from the lattice).
        Card("BaO2", "BaO2", ((26.0, 40), (26.8, 100), (33.2, 45), (42.7, 20), (46.4, 25), (47.7, 15)), 4.0),
        # Tenorite, monoclinic.
        Card(
            "CuO",
            "CuO",
            (
                (32.5, 8),
                (35.5, 100),
                (38.7, 95),
                (48.7, 25),
                (53.5, 10),
                (58.3, 15),
                (61.5, 15),
                (66.2, 12),
                (68.1, 12),
            ),
            3.3,
        ),
        # Cuprite, cubic, a 4.27 A.
        Card("Cu2O", "Cu2O", ((29.6, 8), (36.4, 100), (42.3, 35), (61.4, 27), (73.5, 17)), 8.0),
        # Cubic Im-3m, a 18.3 A: many reflections, the strongest kept.
        Card(
            "BaCuO2",
            "BaCuO2",
            ((24.6, 20), (28.9, 100), (29.4, 45), (31.7, 25), (41.2, 20), (43.0, 25), (52.3, 15), (53.6, 10)),
            3.0,
        ),
        # Orthorhombic Pna21 ("blue phase").
        Card(
            "Y2Cu2O5",
            "Y2Cu2O5",
            ((28.6, 40), (29.9, 100), (30.7, 60), (31.9, 45), (33.4, 35), (36.3, 20), (41.1, 15), (50.2, 15)),
            2.5,
        ),
        # Orthorhombic Pbnm ("green phase", the classic impurity of YBa2Cu3O(6+x) syntheses).
        Card(
            "Y2BaCuO5",
            "Y2BaCuO5",
            ((29.8, 100), (30.5, 75), (31.2, 55), (32.6, 45), (38.8, 15), (41.7, 12), (52.8, 15), (56.6, 12)),
            2.5,
        ),
    )
}


def peak_width(two_theta: np.ndarray) -> np.ndarray:
    """Full width at half maximum in degrees at each angle (shape as `two_theta`): the Caglioti form
    sqrt(U tan^2 + V tan + W) with values typical of a laboratory diffractometer and a well-crystallised powder."""
    tan = np.tan(np.radians(np.asarray(two_theta, dtype=float) / 2))
    return np.sqrt(0.010 * tan**2 - 0.002 * tan + 0.012)


def card_pattern(card: Card, two_theta: np.ndarray, eta: float = 0.5) -> np.ndarray:
    """The card's peaks as pseudo-Voigt profiles (Lorentzian fraction `eta`) on `two_theta` (shape (n,)), scaled
    so its strongest peak's height is 1 (shape (n,))."""
    x = np.asarray(two_theta, dtype=float)
    out = np.zeros_like(x)
    for position, intensity in card.peaks:
        fwhm = float(peak_width(np.array([position]))[0])
        u = (x - position) / (fwhm / 2)
        out += intensity / 100 * (eta / (1 + u**2) + (1 - eta) * np.exp(-np.log(2) * u**2))
    return out


def card_patterns(names: tuple[str, ...] | list[str], two_theta: np.ndarray) -> np.ndarray:
    """Unit-scaled patterns of the named cards, one column each (shape (n, len(names))); KeyError naming an
    unknown phase."""
    unknown = [n for n in names if n not in CARDS]
    if unknown:
        raise KeyError(f"no reference card for {', '.join(unknown)} (cards: {', '.join(CARDS)})")
    return np.column_stack([card_pattern(CARDS[n], two_theta) for n in names])


def weight_fractions(coefficients: Mapping[str, float]) -> dict[str, float]:
    """Weight fractions from the least-squares coefficients of unit-scaled cards (the RIR method): c_p / RIR_p,
    normalised to one; all zero when nothing was found."""
    scaled = {name: max(0.0, c) / CARDS[name].rir for name, c in coefficients.items()}
    total = sum(scaled.values())
    return {name: (v / total if total > 0 else 0.0) for name, v in scaled.items()}
