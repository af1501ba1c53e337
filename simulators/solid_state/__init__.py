"""Solid-state synthesis as a surrogate: fire a powder mixture of precursors, get the weight fractions of the
phases it becomes, and the powder X-ray diffraction pattern a diffractometer records of them.

- `PHASES`: the phase library (formula, molar mass, reference peaks for Cu K-alpha, RIR), `TARGET` its target
  YBa2Cu3O6.5;
- `fire(precursors, temperature_c, hold_h, ramp_c_per_min=5.0, mixing=1.0)`: weight fractions of every phase
  after firing (precursors in mmol of each phase's formula unit; `mmol_from_grams` converts a doser's grams);
  `fire_profile(precursors, steps)` for a furnace's own (temperature, hours) history; `REACTIONS` the pairwise
  reaction network;
- `diffract(fractions, two_theta, seed)`: the powder pattern (counts) of phases at those weight fractions;
- `PRECURSOR_SETS`: the precursor sets of the A-Lab template, each weighed out for 1 mmol of target.

It is a surrogate with a real shape (see `reactions` for the network and where its numbers come from), not data of
a laboratory; `examples/alab_synthesis/README.md` says what a lab would replace.
"""

from simulators.solid_state.diffraction import diffract, ideal_pattern
from simulators.solid_state.phases import PHASES, TARGET
from simulators.solid_state.reactions import (
    REACTIONS,
    fire,
    fire_profile,
    mmol_from_grams,
    profile,
    react,
    weight_fractions,
)
from simulators.solid_state.recipes import PRECURSOR_SETS

__all__ = [
    "PHASES",
    "PRECURSOR_SETS",
    "REACTIONS",
    "TARGET",
    "diffract",
    "fire",
    "fire_profile",
    "ideal_pattern",
    "mmol_from_grams",
    "profile",
    "react",
    "weight_fractions",
]
