"""A surrogate of the oxygen evolution reaction (OER) on a five-metal hydroxide catalyst made from Martian ore, after
USTC's robotic AI chemist (Q. Zhu et al., "Automated synthesis of oxygen-producing catalysts from Martian meteorites
by a robotic AI chemist", Nature Synthesis 3, 319-328 (2024), doi:10.1038/s44160-023-00424-1; the platform itself:
Q. Zhu et al., "An all-round AI-Chemist with a scientific mind", National Science Review 9, nwac190 (2022)).

That robot leached metals from five Martian meteorites, mixed the leachates into catalysts of up to six metals
(Fe, Ni, Mn, Mg, Al, Ca; more than three million candidate formulas), and searched the composition for the lowest
OER overpotential at 10 mA cm^-2; its best catalyst ran at 445.1 mV. This module is not their data and not their
model. It is a smooth function of the composition with that figure of merit, a best value near the reported one,
and a shape taken from well-known OER chemistry of nickel-iron (oxy)hydroxides, written out here:

- Composition: the fractions of five metals, `fe`, `ni`, `mn`, `mg`, `al` (the paper's elements less Ca, which
  behaves here as Mg would), each 0..0.6, summing to one.
- Activity in decades, L = log10(s / (s + 0.3)) + 1.5 b(r; 0.33) + 0.3 b(mn; 0.08) + 0.12 b(mg; 0.05)
  + 0.18 b(al; 0.07), with the bump b(x; p) = (x / p) exp(1 - x / p) (0 at 0, 1 at p, decaying past it):
  - s = ni + fe + 0.3 mn + 0.02: the redox-active sites (Mn counts in part; 0.02 is the substrate's own activity),
    saturating as the film's surface is covered;
  - r = fe / (fe + ni): iron in nickel (oxy)hydroxide raises activity some thirty-fold at its best and less past
    it (Trotochaud et al., J. Am. Chem. Soc. 136, 6744 (2014), about 25 % Fe; Louie and Bell, J. Am. Chem. Soc.
    135, 12329 (2013), about 40 %); the surrogate puts the best ratio at 33 %;
  - a little Mn helps (NiFeMn hydroxides: Lu et al., Chem. Commun. 52, 908 (2016)), and a little Mg or Al, as
    structural cations of the layered hydroxide, help a little more; past a few per cent each only dilutes.
- Overpotential: eta = 602.5 mV - 80 mV x L (each decade of activity lowers the overpotential at fixed current by
  the effective slope across compositions, 80 mV; a constant chosen, not measured). The best composition gives
  445.0 mV, near the paper's 445.1 mV; a random one 505 mV (median; 1 % of them are below 457 mV); the worst
  within the bounds 699 mV (0.4 Mg, 0.6 Al: nothing redox-active but the substrate).
- Measurement: a linear sweep's overpotential at 10 mA cm^-2 repeats to a few mV; each call adds seeded scatter
  of `noise_mv` (default 4 mV).

The known optimum (below: Fe 0.267, Ni 0.541, Mn 0.078, Mg 0.047, Al 0.067, every metal inside its bounds) was
found by SLSQP under the equality from 400 random starts, and is checked by a test that searches the bounded
simplex independently on a grid (tests/examples/test_aichem_oer.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Journal = Callable[[str, dict[str, Any]], None]

METALS = ("fe", "ni", "mn", "mg", "al")
BOUNDS: dict[str, tuple[float, float]] = dict.fromkeys(METALS, (0.0, 0.6))
ROBOT = "ai-chemist"  # the instrument the twin's steps are journalled under
ETA_REF_MV = 602.5
SLOPE_MV_PER_DECADE = 80.0
CURRENT_MA_CM2 = 10.0

KNOWN_OPTIMUM: dict[str, float] = {"fe": 0.26664, "ni": 0.54137, "mn": 0.07806, "mg": 0.04737, "al": 0.06656}
KNOWN_OPTIMUM_MV = 445.026  # overpotential at 10 mA cm^-2 at KNOWN_OPTIMUM, without scatter


def _bump(x: Any, peak: float) -> Any:
    return (x / peak) * np.exp(1.0 - x / peak)


def activity_decades(fe: Any, ni: Any, mn: Any, mg: Any, al: Any) -> Any:
    """log10 of the catalyst's activity (current per area at fixed overpotential), up to a constant. Takes floats or
    numpy arrays of equal shape (a grid of compositions at once)."""
    sites = ni + fe + 0.3 * mn + 0.02
    active = fe + ni
    iron_share = np.divide(fe, active, out=np.zeros_like(active, dtype=float), where=active > 0)
    value = (
        np.log10(sites / (sites + 0.3))
        + 1.5 * _bump(iron_share, 0.33)
        + 0.3 * _bump(mn, 0.08)
        + 0.12 * _bump(mg, 0.05)
        + 0.18 * _bump(al, 0.07)
    )
    return float(value) if np.ndim(value) == 0 else value


def overpotential_mv(fe: float, ni: float, mn: float, mg: float, al: float) -> float:
    """The OER overpotential (mV) at 10 mA cm^-2 of a composition whose fractions sum to one, without scatter."""
    total = fe + ni + mn + mg + al
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"the metal fractions sum to {total:.9g}, not 1")
    if min(fe, ni, mn, mg, al) < 0:
        raise ValueError("a metal fraction is negative")
    return ETA_REF_MV - SLOPE_MV_PER_DECADE * activity_decades(fe, ni, mn, mg, al)


def measure(
    parameters: dict[str, Any], *, key: str = "", journal: Journal | None = None, seed: int = 0, noise_mv: float = 4.0
) -> dict[str, float]:
    """The robot twin's run for one composition: dispense the metal leachates, co-precipitate the hydroxide on the
    electrode, and read the overpotential at 10 mA cm^-2 from a linear sweep. Each step is journalled under the
    instrument `ai-chemist`; returns `{"overpotential_mv": value}`."""
    write: Journal = journal if journal is not None else (lambda kind, detail: None)
    fractions = {metal: float(parameters[metal]) for metal in METALS}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("dispense", {"fractions": {m: round(v, 6) for m, v in fractions.items()}, "total_mmol": 0.5}),
        ("coprecipitate", {"base": "NaOH", "substrate": "carbon paper"}),
        ("linear-sweep", {"electrolyte": "1 M KOH", "scan_mv_s": 5, "at_ma_cm2": CURRENT_MA_CM2}),
    ]
    value = overpotential_mv(**fractions) + noise_mv * float(_rng(seed, key).standard_normal())
    for index, (action, args) in enumerate(steps):
        detail = {"step": index, "instrument": ROBOT, "action": action, "args": args}
        write("action-started", detail)
        result = {"overpotential_mv": round(value, 2)} if action == "linear-sweep" else None
        write("action-done", {**detail, "result": result})
    return {"overpotential_mv": round(value, 2)}


def _rng(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def overpotential_at(points: Mapping[str, float]) -> float:
    """The surrogate's value at a composition given as a mapping (for tests and the README's numbers)."""
    return overpotential_mv(**{m: float(points[m]) for m in METALS})
