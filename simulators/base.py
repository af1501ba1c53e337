"""What a simulator returns, and the errors it may raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SimulationResult:
    """Measured outcomes of one experiment (outcome name -> value), or an infeasible result with its reason."""

    values: Mapping[str, float] = field(default_factory=dict)
    infeasible: bool = False
    reason: str = ""


class SimulationError(Exception):
    """The simulator could not run the experiment. `retryable` says whether trying again could help."""

    retryable = True

    def detail(self) -> dict[str, Any]:
        """What the failure event records besides the message (an instrument failure adds its kind and instrument)."""
        return {}


class PointNotInTable(SimulationError):
    """A lookup simulator was asked for a point its table does not hold; retrying cannot help."""

    retryable = False
