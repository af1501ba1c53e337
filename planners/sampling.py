"""Scrambled Sobol points of the unit cube, drawn so that scipy's balance warning never fires.

Sobol points are balanced only in blocks of a power of two; scipy warns (on stderr, once per call site) whenever a
sequence starts with any other count. We draw the next power of two and keep the first `n`: the same points
`Sobol.random(n)` returns, so a decision recorded before this change is re-derived unchanged.
"""

from __future__ import annotations

import math

import numpy as np


def sobol_points(d: int, n: int, seed: int | np.random.Generator, scramble: bool = True) -> np.ndarray:
    """The first `n` points (`n x d`, in [0, 1)^d) of a scrambled Sobol sequence seeded by `seed`."""
    if n <= 0:
        return np.empty((0, d))
    # Loaded here, not at the top: scipy.stats costs commands that import the ledger (and never draw) a third of a
    # second of start-up.
    from scipy.stats import qmc

    sampler = qmc.Sobol(d=d, scramble=scramble, seed=seed)
    return sampler.random_base2(math.ceil(math.log2(n)))[:n]
