"""A powder X-ray diffraction pattern of a mixture of phases, as a laboratory diffractometer counts it.

Each phase contributes its reference card's peaks (`instruments.powder`: approximate published positions for Cu
K-alpha, pseudo-Voigt profiles whose width grows with angle) scaled by its weight fraction times its reference
intensity ratio (the RIR method's premise, which the phase-identification analysis inverts); the background falls
off from low angles (air scatter and fluorescence) to a floor; the counts are Poisson. A sample's crystallites are
not ideal: every phase's peak heights vary by a few per cent from sample to sample (preferred orientation, particle
statistics), drawn from the seed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from instruments.powder import CARDS, card_pattern

PEAK_COUNTS = 4000.0  # the strongest peak of a pure phase of RIR 4 (its height is PEAK_COUNTS / 4 x RIR)
BACKGROUND_COUNTS = 60.0  # the floor
LOW_ANGLE_COUNTS = 250.0  # extra background at 10 degrees, falling off as (10 / 2-theta)^2
TEXTURE_SD = 0.04  # sample-to-sample scatter of each phase's peak heights (relative)


def ideal_pattern(fractions: Mapping[str, float], two_theta: np.ndarray) -> np.ndarray:
    """Expected counts at each angle of `two_theta` (degrees, shape (n,)) without noise (shape (n,)): the phases'
    cards scaled by weight fraction x RIR, over the background. KeyError naming a phase without a card."""
    x = np.asarray(two_theta, dtype=float)
    counts = BACKGROUND_COUNTS + LOW_ANGLE_COUNTS * (10.0 / np.maximum(x, 1.0)) ** 2
    for name, fraction in fractions.items():
        if name not in CARDS:
            raise KeyError(f"no reference card for phase {name!r}")
        if fraction > 0:
            counts = counts + PEAK_COUNTS / 4 * fraction * CARDS[name].rir * card_pattern(CARDS[name], x)
    return np.asarray(counts)


def diffract(fractions: Mapping[str, float], two_theta: np.ndarray, seed: int, exposure: float = 1.0) -> np.ndarray:
    """Counts (shape (n,)) a diffractometer records at the angles `two_theta` (degrees, Cu K-alpha, shape (n,))
    from a powder whose phases have the weight `fractions` (phase name -> fraction; names from the phase library):
    peaks with width, a background and counting noise. `exposure` scales the counting time (1: the counts this
    module's constants state; a diffractometer counting twice as long per step passes 2). The same seed gives the
    same pattern."""
    rng = np.random.default_rng(seed)
    textured = {name: f * float(np.exp(rng.normal(0.0, TEXTURE_SD))) for name, f in sorted(fractions.items())}
    return rng.poisson(exposure * ideal_pattern(textured, two_theta)).astype(float)
