"""Precursor sets for YBa2Cu3O6.5, each weighed out for 1 mmol of the target (the cations in its proportions).

These are the sets this template's recipe space chooses among, drawn from the kinds of precursor the ARROWS3
study's YBCO benchmark combined (binary oxides, carbonates and peroxides, and the ternary intermediates themselves);
here are seven.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

PRECURSOR_SETS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "Y2O3+BaCO3+CuO": {"Y2O3": 0.5, "BaCO3": 2.0, "CuO": 3.0},
        "Y2O3+BaO2+CuO": {"Y2O3": 0.5, "BaO2": 2.0, "CuO": 3.0},
        "Y2O3+BaCO3+Cu2O": {"Y2O3": 0.5, "BaCO3": 2.0, "Cu2O": 1.5},
        "Y2O3+BaO2+Cu2O": {"Y2O3": 0.5, "BaO2": 2.0, "Cu2O": 1.5},
        "Y2O3+BaCuO2+CuO": {"Y2O3": 0.5, "BaCuO2": 2.0, "CuO": 1.0},
        "Y2Cu2O5+BaCuO2": {"Y2Cu2O5": 0.5, "BaCuO2": 2.0},
        "Y2BaCuO5+BaCuO2+CuO": {"Y2BaCuO5": 0.5, "BaCuO2": 1.5, "CuO": 1.0},
    }
)

# The A-Lab template's recipe grid (examples/alab_synthesis/campaign.yaml): temperatures every 25 C, holds in hours.
TEMPERATURES_C: tuple[float, ...] = tuple(float(t) for t in range(600, 901, 25))
HOLDS_H: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 12.0)

# The best recipe of that grid and its target weight fraction, without noise (`fire`, 5 C/min ramp, quenched): found
# by evaluating all 455 recipes, and checked the same way by tests/examples/test_alab_synthesis.py. The peroxide
# meets CuO early, so BaCuO2 is ready while Y2O3 is still there to take it to the target; above ~800 C the green
# phase Y2BaCuO5 takes the yttrium instead.
KNOWN_OPTIMUM: dict[str, str | float] = {"precursor_set": "Y2O3+BaO2+CuO", "temperature_c": 775.0, "hold_h": 12.0}
KNOWN_OPTIMUM_YIELD = 0.6694  # weight fraction of YBa2Cu3O6.5
