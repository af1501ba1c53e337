"""Classic optimisation test functions as simulated experiments, with optional Gaussian measurement noise.

References: Branin (Dixon & Szegö 1978; minimum 0.397887), Hartmann-6 (minimum -3.32237 at
(0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)), Ackley (minimum 0 at the origin), as tabulated in
Surjanovic & Bingham's Virtual Library of Simulation Experiments.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulators.base import SimulationResult


def branin(x: Sequence[float]) -> float:
    """Branin-Hoo on x1 in [-5, 10], x2 in [0, 15]."""
    x1, x2 = x
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(x: Sequence[float]) -> float:
    """Hartmann-6 on [0, 1]^6."""
    xs = np.asarray(x, dtype=float)
    inner = np.sum(_H6_A * (xs - _H6_P) ** 2, axis=1)
    return float(-np.sum(_H6_ALPHA * np.exp(-inner)))


def ackley(x: Sequence[float]) -> float:
    """Ackley in any dimension (usually on [-32.768, 32.768]^d)."""
    xs = np.asarray(x, dtype=float)
    d = xs.size
    a, b, c = 20.0, 0.2, 2 * math.pi
    return float(-a * math.exp(-b * math.sqrt(np.sum(xs**2) / d)) - math.exp(np.sum(np.cos(c * xs)) / d) + a + math.e)


@dataclass(frozen=True)
class TestFunction:
    function: Callable[[Sequence[float]], float]
    dimension: int | None  # None: any dimension
    optimum: float  # the global minimum's value


TEST_FUNCTIONS: dict[str, TestFunction] = {
    "branin": TestFunction(branin, 2, 0.397887),
    "hartmann6": TestFunction(hartmann6, 6, -3.32237),
    "ackley": TestFunction(ackley, None, 0.0),
}


class FunctionSimulator:
    """Evaluates a test function at the point's parameters (in declared order), plus seeded Gaussian noise.

    The noise of an experiment is drawn from a generator seeded by (seed, experiment key), so results do not
    depend on the order in which concurrent experiments finish, and a re-run of the same key gets the same value.
    """

    def __init__(
        self,
        name: str,
        parameter_names: Sequence[str],
        outcome: str,
        noise_std: float = 0.0,
        seed: int = 0,
        delay_s: float = 0.0,
    ) -> None:
        if name not in TEST_FUNCTIONS:
            raise ValueError(f"unknown test function '{name}' (known: {', '.join(sorted(TEST_FUNCTIONS))})")
        self.name = name
        self.test_function = TEST_FUNCTIONS[name]
        self.parameter_names = list(parameter_names)
        self.outcome = outcome
        self.noise_std = noise_std
        self.seed = seed
        self.delay_s = delay_s

    def run(self, parameters: Mapping[str, Any], key: str) -> SimulationResult:
        if self.delay_s:
            time.sleep(self.delay_s)  # stands for the experiment's duration in demos and concurrency tests
        x = [float(parameters[name]) for name in self.parameter_names]
        value = self.test_function.function(x)
        if self.noise_std:
            value += self.noise_std * float(np.random.default_rng(_stable_seed(self.seed, key)).standard_normal())
        return SimulationResult(values={self.outcome: value})


def _stable_seed(seed: int, key: str) -> int:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little")
