"""Surrogate of sputtered Nb-doped TiO2 (TNO) films: resistivity and thickness from the deposition conditions.

It stands in for the films of Tokyo Tech's digital laboratory (R. Shimizu, S. Kobayashi, Y. Watanabe, Y. Ando and
T. Hitosugi, "Autonomous materials synthesis by machine learning and robotics", APL Materials 8, 111110 (2020),
doi:10.1063/5.0020370), where a robot arm carried each substrate from a sputter-deposition module to a resistance
measurement and Bayesian optimisation chose the next deposition conditions to minimise the film's resistance.
It is a surrogate with the reported shape, not their data: the resistance has a minimum in the oxygen content of
the sputtering gas (too little oxygen leaves an oxygen-deficient, absorbing film; too much compensates the Nb
donors and the film turns insulating, by orders of magnitude), and the numbers are of the order the same group
reported for sputtered TNO (N. Yamada, T. Hitosugi et al., Jpn. J. Appl. Phys. 46, 5275 (2007) and Thin Solid
Films 516, 5754 (2008): polycrystalline films near 1e-3 ohm cm at an oxygen content of order 10 %; epitaxial films
reach 3e-4 ohm cm). The other dependences are generic reactive-sputtering behaviour, written down here and
nowhere measured:

- oxygen: the fraction f = O2 / (Ar + O2) has its optimum f*(P) = 0.03 + 0.04 (P - 50) / 150, rising with the RF
  power P (more metal flux needs more oxygen); log10 rho rises as 1.2 x^2 below it and 4 x^2 above it, with
  x = (f - f*) / f*, the steep side being over-oxidation;
- substrate temperature T: crystallisation into anatase improves up to T* = 380 C, beyond it rutile (a poor
  conductor when doped) appears: + 0.6 ((T - T*) / 150)^2 below T*, + 2.5 ((T - T*) / 150)^2 above;
- working pressure, through the total flow Q = Ar + O2: + 0.2 ((Q - 25 sccm) / 15 sccm)^2 (at high pressure the
  sputtered atoms arrive thermalised, at low pressure energetic oxygen ions damage the film);
- power: + 0.15 ((P - 140) / 100)^2 (ion bombardment at high power, poor crystallinity at low power);
- thickness t = rate x time, rate = 3 nm/min x (P / 100) x (1 - 0.7 f / (f + 0.03)) (the target is poisoned as
  oxygen rises): thin films are worse, + log10(1 + 25 nm / t) (grain-boundary and surface scattering);
- rho_min = 6e-4 ohm cm; the penalty is capped at 5 decades, so every film reads within a Keithley 2000's 100 MOhm
  four-wire range.

A four-point probe with equal spacing on a film much wider than the spacing reads V / I = R_s ln 2 / pi, with the
sheet resistance R_s = rho / t (F. M. Smits, Bell Syst. Tech. J. 37, 711 (1958)); so rho = (pi / ln 2) (V / I) t.

The space the template searches, and its linear constraints (see examples/tokyo_tech_films/campaign.yaml): argon
10..40 sccm, oxygen 0..3 sccm, power 50..200 W, substrate 25..400 C, time 10..60 min; o2 <= 0.1 ar (the oxygen
line's share of the flow), ar + o2 <= 40 sccm (what the pump holds at the working pressure), substrate + 0.5 power
<= 450 C (the heater's setpoint plus the plasma's heating stays under the substrate holder's limit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# rho = FOUR_POINT_FACTOR x (V / I) x t for a thin, wide film under an equally spaced collinear probe.
FOUR_POINT_FACTOR = math.pi / math.log(2)  # 4.532
RHO_MIN_OHM_CM = 6.0e-4
MAX_PENALTY_DECADES = 5.0
BOUNDS: dict[str, tuple[float, float]] = {
    "ar_sccm": (10.0, 40.0),
    "o2_sccm": (0.0, 3.0),
    "power_w": (50.0, 200.0),
    "substrate_c": (25.0, 400.0),
    "time_min": (10.0, 60.0),
}
# Linear inequality constraints, sum(coefficient x parameter) <= rhs, as the campaign file states them.
CONSTRAINTS: tuple[tuple[dict[str, float], float], ...] = (
    ({"o2_sccm": 1.0, "ar_sccm": -0.1}, 0.0),
    ({"ar_sccm": 1.0, "o2_sccm": 1.0}, 40.0),
    ({"substrate_c": 1.0, "power_w": 0.5}, 450.0),
)
# The minimum of log10(rho / ohm cm) over the bounded, constrained space, without run-to-run scatter: found by a
# constrained local search from 300 random starts and checked by a test (tests/examples/test_tokyo_tech_films.py).
# The heater constraint is active there (376 + 0.5 x 148 = 450): the film would like a hotter substrate.
KNOWN_OPTIMUM: dict[str, float] = {
    "ar_sccm": 23.61,
    "o2_sccm": 1.392,
    "power_w": 147.9,
    "substrate_c": 376.0,
    "time_min": 60.0,
}
KNOWN_OPTIMUM_LOG10_RHO = -3.1514  # rho = 7.06e-4 ohm cm, a film of 145 nm


@dataclass(frozen=True)
class Film:
    """A deposited film: its thickness and resistivity, and what a four-point probe on it reads."""

    thickness_nm: float
    resistivity_ohm_cm: float

    @property
    def sheet_resistance_ohm(self) -> float:
        """R_s = rho / t, ohm per square."""
        return self.resistivity_ohm_cm / (self.thickness_nm * 1e-7)

    @property
    def four_point_ohm(self) -> float:
        """V / I across the inner pins of an equally spaced collinear probe: R_s ln 2 / pi."""
        return self.sheet_resistance_ohm / FOUR_POINT_FACTOR


def oxygen_fraction(ar_sccm: float, o2_sccm: float) -> float:
    return o2_sccm / (ar_sccm + o2_sccm)


def deposition_rate_nm_min(power_w: float, o2_fraction: float) -> float:
    """Growth rate: proportional to the power, falling as oxygen poisons the target."""
    return 3.0 * (power_w / 100.0) * (1.0 - 0.7 * o2_fraction / (o2_fraction + 0.03))


def log10_resistivity(ar_sccm: float, o2_sccm: float, power_w: float, substrate_c: float, time_min: float) -> float:
    """log10(rho / ohm cm) of the film these conditions grow, without run-to-run scatter."""
    f = oxygen_fraction(ar_sccm, o2_sccm)
    f_best = 0.03 + 0.04 * (power_w - 50.0) / 150.0
    x = (f - f_best) / f_best
    oxygen = (1.2 if x < 0 else 4.0) * x * x
    y = (substrate_c - 380.0) / 150.0
    temperature = (0.6 if y < 0 else 2.5) * y * y
    power = 0.15 * ((power_w - 140.0) / 100.0) ** 2
    pressure = 0.2 * ((ar_sccm + o2_sccm - 25.0) / 15.0) ** 2
    thickness = deposition_rate_nm_min(power_w, f) * time_min
    size = math.log10(1.0 + 25.0 / thickness)
    penalty = min(oxygen + temperature + power + pressure + size, MAX_PENALTY_DECADES)
    return math.log10(RHO_MIN_OHM_CM) + penalty


def film(
    ar_sccm: float,
    o2_sccm: float,
    power_w: float,
    substrate_c: float,
    time_min: float,
    *,
    scatter: tuple[float, float] = (0.0, 0.0),
) -> Film:
    """The film grown; `scatter` is (z_rho, z_thickness), standard normal draws giving the run-to-run variation
    of a real chamber (5 % in resistivity, 2 % in thickness)."""
    f = oxygen_fraction(ar_sccm, o2_sccm)
    thickness = deposition_rate_nm_min(power_w, f) * time_min * (1.0 + 0.02 * scatter[1])
    rho = 10 ** log10_resistivity(ar_sccm, o2_sccm, power_w, substrate_c, time_min) * math.exp(0.05 * scatter[0])
    return Film(thickness_nm=thickness, resistivity_ohm_cm=rho)


def feasible(parameters: Mapping[str, Any]) -> bool:
    """Inside the bounds and the linear constraints (to a rounding tolerance)."""
    inside = all(low - 1e-9 <= float(parameters[name]) <= high + 1e-9 for name, (low, high) in BOUNDS.items())
    return inside and all(
        sum(c * float(parameters[name]) for name, c in coefficients.items()) <= rhs + 1e-6
        for coefficients, rhs in CONSTRAINTS
    )
