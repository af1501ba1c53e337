"""Surrogate of doped spiro-OMeTAD hole-transport films: absorbance spectrum, conductance and pseudo-mobility from
the dopant ratio and the anneal.

It stands in for the films of the self-driving laboratory "Ada" (B. P. MacLeod, F. G. L. Parlane, T. D. Morrissey,
F. Häse, L. M. Roch et al., "Self-driving laboratory for accelerated discovery of thin-film materials", Science
Advances 6, eaaz8867 (2020), doi:10.1126/sciadv.aaz8867; C. P. Berlinguette's group at the University of British
Columbia with A. Aspuru-Guzik's at the University of Toronto). There a robot mixed spiro-OMeTAD with the dopant
Co(III)TFSI, spin-coated the solution onto a glass slide, annealed the film, measured its absorbance spectrum and
its conductance, and a Bayesian optimiser chose the next dopant ratio and annealing time to maximise a
pseudo-mobility: the conductance divided by the absorbance. Conductivity is sigma = q n mu, the holes n are the
oxidised spiro-OMeTAD molecules that the dopant makes, and their absorption band grows with n t (t the
thickness) just as the conductance does: the ratio measures the mobility mu, thickness and doping level cancel.

It is a surrogate with that structure, not their data. What it models, and where the numbers come from:

- oxidation: each Co(III) oxidises one spiro-OMeTAD, at 90 % (plus 0.3 % oxidised by air), so the hole fraction is
  f = 0.9 r + 0.003 for the molar ratio r = Co(III)TFSI : spiro-OMeTAD (0.01-0.40 here);
- the spectrum: neutral spiro-OMeTAD absorbs in a band at 385 nm (absorbance 1.2 for a 150 nm film), the oxidised
  molecule (spiro-OMeTAD+) in a band at 510 nm (3.0 for a fully oxidised film), Gaussians of 25 and 40 nm, scaled
  by (1 - f) and f and by the thickness; the pseudo-mobility uses the mean absorbance over 490-530 nm (`BAND_NM`);
- thickness t = 150 nm x (1 + 0.5 r) (the dopant adds material), with 3 % run-to-run scatter;
- mobility: mu = 2e-4 cm^2/(V s) at best (doped spiro-OMeTAD films are reported between about 1e-5 and 1e-3),
  times a doping factor g(r) = (r + 0.005) / (r + 0.05) exp(-r / 0.25), normalised to 1 at its maximum (r = 0.081:
  dopant first fills traps, then its ions scatter and disorder the film), lowered by the anneal's penalties, in
  decades: the anneal dose theta, minutes-equivalent at 100 C, theta = sum of exp((T - 100 C) / 15 C) dt over the
  time the film spends on the heater, wants theta*(r) = 30 min (1 + 3 r) (residual solvent and an uneven dopant
  below it, dopant decomposition above it): 0.35 u^2 below, 0.7 u^2 above, u = log10(theta / theta*); the
  highest temperature reached adds 0.3 ((T - 140 C) / 80 C)^2, plus 3 ((T - 125 C) / 40 C)^2 above spiro-OMeTAD's
  glass transition near 125 C, where the film crystallises. The penalty is capped at 2.3 decades (every film
  reads within a Keithley 2000's range), and the mobility has 5 % run-to-run scatter;
- conductance: the substrate carries interdigitated electrodes of W / L = 2000 squares, read by four-wire ohms
  at their pads: G = 2000 q N f mu t, with N = 5.0e20 spiro-OMeTAD molecules per cm^3 (density 1.02 g/cm^3,
  1225 g/mol).

These dependences are this template's, written here and nowhere measured; the paper reports the loop and the
pseudo-mobility, which is why the objective is built as it is. The paper varied the dopant ratio and the annealing
time; this template adds the annealing temperature, so that the anneal has two knobs.

The bench's sample is the substrate with its precursor solution; it holds a film once it has been on a heater
(`Vessel.heated`), and the film is read from what was done to it: the dopant dispensed into it (the pump doses the
bench's reagent A, here the dopant stock: r = A / B, the bench's B standing for spiro-OMeTAD, 0.5 mmol in the vial,
so a ratio r takes r mL of the 0.5 M stock) and the temperatures it spent its time at. The run-to-run scatter of a
film is drawn from its sample's label, so it is the same whenever the film is measured again.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

ELEMENTARY_CHARGE = 1.602e-19  # C
SPIRO_PER_CM3 = 5.0e20
ELECTRODE_SQUARES = 2000.0  # W / L of the interdigitated electrodes
BASE_THICKNESS_NM = 150.0
MU_MAX_CM2_VS = 2.0e-4
OXIDATION_EFFICIENCY = 0.9
AIR_OXIDISED = 0.003
NEUTRAL_BAND = (385.0, 25.0, 1.2)  # centre nm, width nm, absorbance of a 150 nm neutral film at the centre
OXIDISED_BAND = (510.0, 40.0, 3.0)  # the same for a fully oxidised film
BAND_NM = (490.0, 530.0)  # where the pseudo-mobility's absorbance is read
MAX_PENALTY_DECADES = 2.3
GLASS_TRANSITION_C = 125.0

BOUNDS: dict[str, tuple[float, float]] = {
    "dopant_ratio": (0.01, 0.40),
    "anneal_c": (40.0, 160.0),
    "anneal_min": (2.0, 30.0),
}
# The ratio is planned on a grid of 0.01: the pump dispenses r mL exactly (10-400 uL).
RATIOS: tuple[float, ...] = tuple(round(0.01 * k, 2) for k in range(1, 41))

# The maximum of log10(pseudo-mobility / uS) over the space, without run-to-run scatter: found by a bounded search
# over (anneal_c, anneal_min) at every ratio of the grid and checked by a test (tests/examples/test_ada_films.py).
KNOWN_OPTIMUM: dict[str, float] = {"dopant_ratio": 0.08, "anneal_c": 125.37, "anneal_min": 6.857}
# 163 uS per unit of absorbance: mu = 1.95e-4 cm^2/(V s), a hole fraction of 7.5 %, a film of 156 nm.
KNOWN_OPTIMUM_LOG10_PSEUDO_MOBILITY = 2.2122


def _doping_factor(r: float) -> float:
    return (r + 0.005) / (r + 0.05) * math.exp(-r / 0.25)


# g(r) is largest where 1/(r + 0.005) - 1/(r + 0.05) = 4, r = 0.0810.
_G_MAX = _doping_factor((-0.055 + math.sqrt(0.055**2 + 4 * 0.011)) / 2)


def oxidised_fraction(dopant_ratio: float) -> float:
    return min(1.0, OXIDATION_EFFICIENCY * dopant_ratio + AIR_OXIDISED)


def thickness_nm(dopant_ratio: float) -> float:
    return BASE_THICKNESS_NM * (1.0 + 0.5 * dopant_ratio)


def anneal_dose_min(heated: Iterable[tuple[float, float]]) -> float:
    """Minutes-equivalent at 100 C of a thermal history of (temperature C, seconds) steps."""
    return sum(math.exp((t - 100.0) / 15.0) * seconds for t, seconds in heated) / 60.0


def log10_mobility(dopant_ratio: float, dose_min: float, highest_c: float) -> float:
    """log10(mu / cm^2 V^-1 s^-1) of a film of this ratio, anneal dose and highest temperature, without scatter."""
    u = math.log10(max(dose_min, 1e-12) / (30.0 * (1.0 + 3.0 * dopant_ratio)))
    dose = (0.35 if u < 0 else 0.7) * u * u
    temperature = 0.3 * ((highest_c - 140.0) / 80.0) ** 2
    if highest_c > GLASS_TRANSITION_C:
        temperature += 3.0 * ((highest_c - GLASS_TRANSITION_C) / 40.0) ** 2
    penalty = min(dose + temperature, MAX_PENALTY_DECADES)
    return math.log10(MU_MAX_CM2_VS * _doping_factor(dopant_ratio) / _G_MAX) - penalty


def absorbance(wavelengths: np.ndarray, oxidised: float, thickness: float) -> np.ndarray:
    """Absorbance A(wavelength) (shape of `wavelengths`) of a film with this hole fraction and thickness (nm)."""
    scale = thickness / BASE_THICKNESS_NM
    (n0, nw, na), (o0, ow, oa) = NEUTRAL_BAND, OXIDISED_BAND
    neutral = na * (1.0 - oxidised) * np.exp(-0.5 * ((wavelengths - n0) / nw) ** 2)
    return np.asarray(scale * (neutral + oa * oxidised * np.exp(-0.5 * ((wavelengths - o0) / ow) ** 2)))


@dataclass(frozen=True)
class Film:
    """An annealed film: what it is made of, and what the spectrometer and the meter read on it."""

    dopant_ratio: float
    thickness_nm: float
    mobility_cm2_vs: float

    @property
    def oxidised_fraction(self) -> float:
        return oxidised_fraction(self.dopant_ratio)

    @property
    def conductance_s(self) -> float:
        """G = (W / L) q N f mu t across the electrodes."""
        sigma = ELEMENTARY_CHARGE * SPIRO_PER_CM3 * self.oxidised_fraction * self.mobility_cm2_vs
        return ELECTRODE_SQUARES * sigma * self.thickness_nm * 1e-7

    @property
    def resistance_ohm(self) -> float:
        return 1.0 / self.conductance_s

    def absorbance(self, wavelengths: np.ndarray) -> np.ndarray:
        return absorbance(wavelengths, self.oxidised_fraction, self.thickness_nm)

    @property
    def band_absorbance(self) -> float:
        """Mean absorbance over `BAND_NM`, as the template's analysis step reads it."""
        return float(self.absorbance(np.linspace(*BAND_NM, 401)).mean())

    @property
    def log10_pseudo_mobility(self) -> float:
        """log10 of the conductance in microsiemens over the band's absorbance."""
        return math.log10(1e6 * self.conductance_s / self.band_absorbance)


def film(
    dopant_ratio: float,
    heated: Iterable[tuple[float, float]],
    *,
    scatter: tuple[float, float] = (0.0, 0.0),
) -> Film:
    """The film a ratio and a thermal history of (temperature C, seconds) steps make; `scatter` is (z_mobility,
    z_thickness), standard normal draws giving a real line's run-to-run variation (5 % and 3 %)."""
    steps = list(heated)
    highest = max((t for t, _ in steps), default=22.0)
    mu = 10 ** log10_mobility(dopant_ratio, anneal_dose_min(steps), highest) * math.exp(0.05 * scatter[0])
    return Film(dopant_ratio, thickness_nm(dopant_ratio) * (1.0 + 0.03 * scatter[1]), mu)


def annealed(dopant_ratio: float, anneal_c: float, anneal_min: float) -> Film:
    """The film of an isothermal anneal (no ramps), without scatter."""
    return film(dopant_ratio, [(anneal_c, anneal_min * 60.0)])


def log10_pseudo_mobility(dopant_ratio: float, anneal_c: float, anneal_min: float) -> float:
    """The objective, log10(pseudo-mobility / uS), of an isothermal anneal, without scatter."""
    return annealed(dopant_ratio, anneal_c, anneal_min).log10_pseudo_mobility


# --- what the twins read on a bench sample ------------------------------------------------------------------------


class Vessel(Protocol):
    """What this module reads of a bench sample (`simulators.twins.bench.Vessel`; the twins import this module, so
    it does not import theirs)."""

    key: str
    a_mmol: float
    b_mmol: float
    p_mmol: float
    d_mmol: float
    heated: list[tuple[float, float]]


def dopant_ratio_of(vessel: Vessel) -> float:
    """Dopant (the bench's A, dispensed) over spiro-OMeTAD (its B, charged), counting what reacted to P and D."""
    reacted = vessel.p_mmol + vessel.d_mmol
    spiro = vessel.b_mmol + reacted
    return (vessel.a_mmol + reacted) / spiro if spiro > 0 else 0.0


def film_on(vessel: Vessel) -> Film | None:
    """The film on a bench sample, or None while it has not been on a heater (a substrate with its solution)."""
    if not vessel.heated:
        return None
    draws = np.random.default_rng(zlib.crc32(vessel.key.encode())).standard_normal(2)
    return film(dopant_ratio_of(vessel), vessel.heated, scatter=(float(draws[0]), float(draws[1])))


def film_absorbance(vessel: Vessel, wavelengths: np.ndarray) -> np.ndarray:
    """What the spectrometer twin's sample absorbs (option `film: ada`): the film's two bands, or nothing (zeros)
    on a substrate not yet coated and annealed."""
    made = film_on(vessel)
    return made.absorbance(wavelengths) if made is not None else np.zeros_like(wavelengths)


def film_resistance_ohm(vessel: Vessel) -> float:
    """What four-wire ohms read across the substrate's electrodes (Keithley twin option `film: ada`): infinite
    without a film."""
    made = film_on(vessel)
    return made.resistance_ohm if made is not None else math.inf


def in_bounds(parameters: Mapping[str, Any]) -> bool:
    return all(low - 1e-9 <= float(parameters[name]) <= high + 1e-9 for name, (low, high) in BOUNDS.items())
