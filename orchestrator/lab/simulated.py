"""The simulated lab: a test-function or lookup-table simulator behind the lab contract.

Simulators speak their own small language (`SimulationResult`, `SimulationError`) so they stay usable without
the orchestrator; this adapter translates it: results become `LabResult`, errors become `LabFailure` with the
simulator's own verdict on whether a retry could help.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from instruments.station import Journal
from orchestrator.lab.contract import LabFailure, LabResult
from simulators.base import SimulationError, SimulationResult


class Simulator(Protocol):
    def run(self, parameters: Mapping[str, Any], key: str) -> SimulationResult: ...


class SimulatedLab:
    """A simulator as a lab. It holds nothing, so `close()` has nothing to release, and keeps no journal."""

    def __init__(
        self, simulator: Simulator, max_concurrency: int, candidates: list[dict[str, Any]] | None = None
    ) -> None:
        self.simulator = simulator
        self.max_concurrency = max_concurrency
        self.candidates = candidates

    def run(self, parameters: Mapping[str, Any], key: str, journal: Journal | None = None) -> LabResult:
        try:
            result = self.simulator.run(parameters, key)
        except SimulationError as exc:
            raise LabFailure(str(exc), retryable=exc.retryable, detail={"error": type(exc).__name__}) from exc
        return LabResult(values=dict(result.values), infeasible=result.infeasible, reason=result.reason)

    def close(self) -> None:
        return None
