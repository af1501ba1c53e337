"""What a simulator returns, and the errors it may raise.

Simulators know nothing of the orchestrator: its lab room adapts these to the lab contract
(`orchestrator.lab.simulated`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SimulationResult:
    """Measured outcomes of one experiment (outcome name -> value), or an infeasible result with its reason."""

    values: Mapping[str, float] = field(default_factory=dict)
    infeasible: bool = False
    reason: str = ""


class SimulationError(Exception):
    """The simulator could not run the experiment. `retryable` says whether trying again could help."""

    retryable = True


class PointNotInTable(SimulationError):
    """A lookup simulator was asked for a point its table does not hold; retrying cannot help."""

    retryable = False
