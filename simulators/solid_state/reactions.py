"""Firing a powder mixture: pairwise solid-state reactions, intermediates, and their temperature and time.

The shape follows how ARROWS3 reasons about solid-state synthesis (N. J. Szymanski, P. Nevatia, C. J. Bartel,
Y. Zeng, G. Ceder, "Autonomous and dynamic precursor selection for solid-state materials synthesis", Nature
Communications 14, 6956 (2023)): precursors react two at a time at their interfaces, each pairwise reaction going
faster the larger its thermodynamic driving force (the free energy it releases per atom) and the hotter the
furnace; intermediates that form early can consume most of the driving force, so the target forms from them only
slowly, or a stable by-product traps the cations for good. The network is that of YBa2Cu3O6.5 (YBCO), the target
of the ARROWS3 study's benchmark set:

    BaCO3 + CuO        -> BaCuO2             (CO2 leaves)          -45 meV/atom  Ea 260 kJ/mol
    BaO2 + CuO         -> BaCuO2             (O2 leaves)          -110           140
    BaO2 + 1/2 Cu2O    -> BaCuO2                                  -130           140
    Cu2O               -> 2 CuO              (O2 of the air)       -60           110
    Y2O3 + 2 CuO       -> Y2Cu2O5                                  -30           250
    Y2O3 + BaCuO2      -> Y2BaCuO5           (the green phase)    -100           340
    Y2Cu2O5 + BaCuO2   -> Y2BaCuO5 + 2 CuO                         -30           340
    Y2O3 + 4 BaCuO2 + 2 CuO         -> 2 YBa2Cu3O6.5               -75           200
    Y2Cu2O5 + 4 BaCuO2              -> 2 YBa2Cu3O6.5               -35           220
    Y2BaCuO5 + 3 BaCuO2 + 2 CuO     -> 2 YBa2Cu3O6.5              -0.2           250

The driving forces and activation energies are this simulator's, chosen to give the qualitative picture the
literature describes (BaO2 reacts with copper oxides hundreds of degrees below BaCO3, which must lose its CO2;
Y2BaCuO5 is the usual trap; the target forms readily only while Y2O3 or Y2Cu2O5 still meet BaCuO2 and CuO); they
are not computed from the Materials Project, nor fitted to the study's 188 syntheses. The rate of reaction r is

    rate_r = kappa * (|dG_r| / 100 meV) * exp(-Ea_r / R * (1/T - 1/1073 K)) * N * (prod_j x_j)^(2/m)

in mmol of reaction extent per hour, with N the amount of solid formula units, x_j the fraction of them that are
reactant j (how often its grains touch the others), m the number of solid reactants (a step of three phases is
ranked with the pairwise ones rather than made rare by the product of three fractions; m = 1 is first order) and
kappa = 1.5 per hour. Gases (CO2, O2) leave or come from the furnace's air. The furnace ramps from room temperature at
the ramp rate, holds, and `fire` takes the sample out hot: nothing reacts while it cools (a quench, which makes
the recipe's yield a function of the recipe alone). A furnace's own history, its slow cooling included, is followed
by `fire_profile`, as the furnace twin does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simulators.solid_state.phases import PHASES

GAS_CONSTANT = 8.314  # J / (mol K)
KAPPA_PER_H = 1.5
REFERENCE_K = 1073.15  # 800 C, where kappa * |dG| / 100 meV is the rate constant
ROOM_C = 25.0


@dataclass(frozen=True)
class Reaction:
    """One reaction between solid phases: amounts per unit of extent (mmol), its driving force (meV/atom, negative)
    and activation energy (kJ/mol)."""

    reactants: Mapping[str, float]
    products: Mapping[str, float]
    driving_force_mev: float
    activation_kj: float

    def rate_constant(self, temperature_c: float) -> float:
        """Per hour, at `temperature_c`."""
        kelvin = temperature_c + 273.15
        return (
            KAPPA_PER_H
            * abs(self.driving_force_mev)
            / 100.0
            * math.exp(-self.activation_kj * 1000 / GAS_CONSTANT * (1 / kelvin - 1 / REFERENCE_K))
        )

    def __str__(self) -> str:
        def side(amounts: Mapping[str, float]) -> str:
            return " + ".join(f"{'' if v == 1 else f'{v:g} '}{k}" for k, v in amounts.items())

        return f"{side(self.reactants)} -> {side(self.products)}"


REACTIONS: tuple[Reaction, ...] = (
    Reaction({"BaCO3": 1, "CuO": 1}, {"BaCuO2": 1}, -45, 260),
    Reaction({"BaO2": 1, "CuO": 1}, {"BaCuO2": 1}, -110, 140),
    Reaction({"BaO2": 1, "Cu2O": 0.5}, {"BaCuO2": 1}, -130, 140),
    Reaction({"Cu2O": 1}, {"CuO": 2}, -60, 110),
    Reaction({"Y2O3": 1, "CuO": 2}, {"Y2Cu2O5": 1}, -30, 250),
    Reaction({"Y2O3": 1, "BaCuO2": 1}, {"Y2BaCuO5": 1}, -100, 340),
    Reaction({"Y2Cu2O5": 1, "BaCuO2": 1}, {"Y2BaCuO5": 1, "CuO": 2}, -30, 340),
    Reaction({"Y2O3": 1, "BaCuO2": 4, "CuO": 2}, {"YBa2Cu3O6.5": 2}, -75, 200),
    Reaction({"Y2Cu2O5": 1, "BaCuO2": 4}, {"YBa2Cu3O6.5": 2}, -35, 220),
    Reaction({"Y2BaCuO5": 1, "BaCuO2": 3, "CuO": 2}, {"YBa2Cu3O6.5": 2}, -0.2, 250),
)

SPECIES: tuple[str, ...] = tuple(PHASES)
_INDEX = {name: i for i, name in enumerate(SPECIES)}


def _matrices() -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    consumed = np.zeros((len(SPECIES), len(REACTIONS)))
    produced = np.zeros((len(SPECIES), len(REACTIONS)))
    for r, reaction in enumerate(REACTIONS):
        for name, amount in reaction.reactants.items():
            consumed[_INDEX[name], r] = amount
        for name, amount in reaction.products.items():
            produced[_INDEX[name], r] = amount
    reactant_rows = [np.flatnonzero(consumed[:, r]) for r in range(len(REACTIONS))]
    exponents = np.array([1.0 if len(rows) == 1 else 2.0 / len(rows) for rows in reactant_rows])
    return consumed, produced, reactant_rows, exponents


_CONSUMED, _PRODUCED, _REACTANT_ROWS, _EXPONENTS = _matrices()


def profile(temperature_c: float, hold_h: float, ramp_c_per_min: float = 5.0) -> list[tuple[float, float]]:
    """The furnace's program as (temperature in C, hours) steps: the ramp from room temperature in steps of at
    most 10 C (each at its mean temperature), then the hold."""
    if ramp_c_per_min <= 0:
        raise ValueError("ramp_c_per_min must be positive")
    steps: list[tuple[float, float]] = []
    rise = max(0.0, temperature_c - ROOM_C)
    pieces = max(1, math.ceil(rise / 10.0))
    for i in range(pieces if rise > 0 else 0):
        low = ROOM_C + rise * i / pieces
        high = ROOM_C + rise * (i + 1) / pieces
        steps.append(((low + high) / 2, (high - low) / ramp_c_per_min / 60))
    if hold_h > 0:
        steps.append((temperature_c, hold_h))
    return steps


def react(amounts: Mapping[str, float], steps: Iterable[tuple[float, float]], mixing: float = 1.0) -> dict[str, float]:
    """Amounts (mmol of each phase's formula unit) after the (temperature in C, hours) steps, every phase named,
    unreacted precursors and intermediates included. `mixing` (0-1] scales every rate: how much of the grains'
    surface touches other phases (1 well milled; a powder only stirred together reacts slower). ValueError naming a
    phase it does not know or an amount that is negative or not finite."""
    if not 0 < mixing <= 1:
        raise ValueError(f"mixing: expected a number in (0, 1], got {mixing!r}")
    n = np.zeros(len(SPECIES))
    for name, amount in amounts.items():
        if name not in _INDEX:
            raise ValueError(f"precursors: unknown phase {name!r} (known: {', '.join(SPECIES)})")
        if not math.isfinite(amount) or amount < 0:
            raise ValueError(f"precursors.{name}: amount must be a finite number >= 0, got {amount!r}")
        n[_INDEX[name]] += float(amount)
    stoichiometry = _PRODUCED - _CONSUMED
    for temperature_c, hours in steps:
        k = mixing * np.array([reaction.rate_constant(temperature_c) for reaction in REACTIONS])
        remaining = float(hours)
        while remaining > 1e-12:
            total = n.sum()
            if total <= 0:
                break
            x = np.clip(n, 0.0, None) / total
            contact = np.array([np.prod(x[rows]) for rows in _REACTANT_ROWS]) ** _EXPONENTS
            rates = k * total * contact  # mmol of extent per hour
            use = _CONSUMED @ rates  # mmol per hour each phase is consumed at
            with np.errstate(divide="ignore", invalid="ignore"):
                # Explicit steps small enough that no phase loses more than a tenth of what is left per step.
                limits = np.where(use > 0, 0.1 * n / use, np.inf)
            dt = min(remaining, float(limits.min()) if np.isfinite(limits.min()) else remaining)
            dt = max(dt, min(remaining, 1e-4))
            extent = rates * dt
            # Never consume more than there is: scale a reaction back to its scarcest reactant.
            for r, rows in enumerate(_REACTANT_ROWS):
                if extent[r] > 0:
                    extent[r] = min(extent[r], float(np.min(n[rows] / _CONSUMED[rows, r])))
            n = np.clip(n + stoichiometry @ extent, 0.0, None)
            remaining -= dt
    return {name: float(n[i]) for i, name in enumerate(SPECIES)}


def weight_fractions(amounts: Mapping[str, float]) -> dict[str, float]:
    """Weight fractions of the phases from their amounts (mmol); zero for every phase when there is nothing."""
    grams = {name: amount * PHASES[name].molar_mass for name, amount in amounts.items()}
    total = sum(grams.values())
    return {name: (g / total if total > 0 else 0.0) for name, g in grams.items()}


def mmol_from_grams(grams: Mapping[str, float]) -> dict[str, float]:
    """Amounts in mmol of each phase's formula unit from masses in grams (what a doser weighs out)."""
    return {name: 1000.0 * g / PHASES[name].molar_mass for name, g in grams.items()}


def fire_profile(
    precursors: Mapping[str, float], steps: Sequence[tuple[float, float]], mixing: float = 1.0
) -> dict[str, float]:
    """Weight fractions of the product's phases (every phase named; the precursors left unreacted and the
    intermediates included) after firing `precursors` (mmol of each phase's formula unit) through the
    (temperature in C, hours) steps of a furnace's program: what a heater's twin that records its own temperature
    history uses. `mixing` as in `react`."""
    return weight_fractions(react(precursors, steps, mixing))


def fire(
    precursors: Mapping[str, float],
    temperature_c: float,
    hold_h: float,
    ramp_c_per_min: float = 5.0,
    mixing: float = 1.0,
) -> dict[str, float]:
    """Weight fractions of the product's phases after firing the precursors (mmol of each phase's formula unit,
    e.g. {"Y2O3": 0.5, "BaCO3": 2, "CuO": 3}) in air: ramped from room temperature at `ramp_c_per_min`, held
    `hold_h` hours at `temperature_c`, cooled without further reaction. Every phase of the library is named (zero
    where absent); the fractions sum to one. Deterministic: the noiseless surrogate. Grams convert with
    `mmol_from_grams`; `mixing` as in `react`."""
    if not math.isfinite(temperature_c) or temperature_c < ROOM_C:
        raise ValueError(f"temperature_c: expected a temperature of at least {ROOM_C:g} C, got {temperature_c!r}")
    if not math.isfinite(hold_h) or hold_h < 0:
        raise ValueError(f"hold_h: expected hours >= 0, got {hold_h!r}")
    return fire_profile(precursors, profile(temperature_c, hold_h, ramp_c_per_min), mixing)
