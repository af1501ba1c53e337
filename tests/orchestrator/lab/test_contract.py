"""The lab contract's adapters: a simulator's and a station's results and failures reach the cycle in the
contract's words (`LabResult`, `LabFailure`), with the adapter's verdict on whether a retry could help."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from instruments.errors import InstrumentTimeout, LimitViolation
from orchestrator.lab.build import build_lab
from orchestrator.lab.contract import LabFailure, LabResult
from orchestrator.lab.simulated import SimulatedLab
from orchestrator.lab.station import InstrumentFailure, StationAdapter
from simulators.base import PointNotInTable, SimulationError, SimulationResult
from tests.campaigns import EXAMPLES_DIR, hartmann_spec, to_spec


class ScriptedSimulator:
    """Answers with what it was given, or raises it."""

    def __init__(self, answer: SimulationResult | Exception) -> None:
        self.answer = answer

    def run(self, parameters: Mapping[str, Any], key: str) -> SimulationResult:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_simulator_result_becomes_a_lab_result() -> None:
    lab = SimulatedLab(ScriptedSimulator(SimulationResult(values={"y": 2.5})), max_concurrency=3)
    assert lab.run({"x": 1}, "k:1") == LabResult(values={"y": 2.5})
    infeasible = SimulatedLab(ScriptedSimulator(SimulationResult(infeasible=True, reason="no product")), 1)
    assert infeasible.run({"x": 1}, "k:2") == LabResult(infeasible=True, reason="no product")


@pytest.mark.parametrize(
    ("error", "retryable", "name"),
    [(SimulationError("pump stalled"), True, "SimulationError"), (PointNotInTable("x=9"), False, "PointNotInTable")],
)
def test_a_simulator_error_becomes_a_lab_failure_with_its_own_retry_verdict(
    error: SimulationError, retryable: bool, name: str
) -> None:
    lab = SimulatedLab(ScriptedSimulator(error), max_concurrency=1)
    with pytest.raises(LabFailure) as caught:
        lab.run({"x": 9}, "k:1")
    assert caught.value.retryable is retryable
    assert caught.value.detail == {"error": name}
    assert str(caught.value) == str(error)


class FailingRuntime:
    """A station runtime whose instruments fail with the error it is given."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    def run(
        self, parameters: Mapping[str, Any], key: str, journal: Any = None, ask_person: Any = None, hold: Any = None
    ) -> dict[str, float]:
        raise self.error

    def close(self) -> None:
        self.closed = True


def test_an_instrument_error_becomes_a_lab_failure_not_a_simulation_error() -> None:
    timeout = StationAdapter(FailingRuntime(InstrumentTimeout("no answer", instrument="pump")), 1)  # type: ignore[arg-type]
    with pytest.raises(LabFailure) as caught:
        timeout.run({"x": 1}, "k:1")
    assert isinstance(caught.value, InstrumentFailure) and not isinstance(caught.value, SimulationError)
    assert caught.value.retryable
    assert caught.value.detail == {"fault": "timeout", "instrument": "pump"}
    limit = LimitViolation("volume over 5 mL", limit="pump.limits.volume_ml", instrument="pump")
    refused = StationAdapter(FailingRuntime(limit), 1)  # type: ignore[arg-type]
    with pytest.raises(LabFailure) as caught:
        refused.run({"x": 1}, "k:2")
    assert not caught.value.retryable
    assert caught.value.detail == {"fault": "limit", "instrument": "pump", "limit": "pump.limits.volume_ml"}


def test_the_built_lab_of_a_function_campaign_speaks_the_contract() -> None:
    spec, _ = to_spec(
        hartmann_spec(lab={"simulator": "hartmann6", "noise_std": 0.0, "max_concurrency": 3}), EXAMPLES_DIR
    )
    lab = build_lab(spec)
    assert isinstance(lab, SimulatedLab) and lab.max_concurrency == 3 and lab.candidates is None
    result = lab.run({f"x{i}": 0.5 for i in range(1, 7)}, "k:1", None)
    assert isinstance(result, LabResult) and set(result.values) == {"y"}
    lab.close()
