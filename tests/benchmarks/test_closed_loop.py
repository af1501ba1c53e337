"""The benchmarks' closed loop (`benchmarks/closed_loop.planning_loop`) runs the planner as a campaign would: the
seed of cycle k derived as deduce derives it, each decision warm-started by the last one's model state, every
result returned with what was predicted for it, the last batch cut to the budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.closed_loop import planning_loop
from orchestrator.records.provenance import derive_seed
from planners.base import Observation, Plan, Prediction, Proposal


class RecordingPlanner:
    """Proposes the next integers, predicting each as itself; remembers what it was called with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def propose(
        self,
        problem: Any,
        observations: Sequence[Observation],
        pending: Sequence[Any],
        batch_size: int,
        seed: int,
        warm_start: dict[str, Any] | None = None,
    ) -> Plan:
        self.calls.append(
            {"seen": list(observations), "batch": batch_size, "seed": seed, "warm": warm_start, "pending": pending}
        )
        start = len(observations)
        proposals = [
            Proposal(parameters={"x": float(i)}, predicted={"y": Prediction(mean=float(i), std=1.0)})
            for i in range(start, start + batch_size)
        ]
        return Plan(proposals=proposals, model_state={"decision": len(self.calls)})


def test_the_loop_runs_the_planner_as_a_campaign_does() -> None:
    planner = RecordingPlanner()
    indices: list[int] = []

    def run(proposal: Proposal, index: int) -> Observation:
        indices.append(index)
        x = proposal.parameters["x"]
        return Observation(parameters=proposal.parameters, values={"y": 2 * x}, predicted=proposal.predicted)

    loop = planning_loop(planner, problem=None, budget=7, batch_size=3, seed=11, run=run)

    assert [c["batch"] for c in planner.calls] == [3, 3, 1]
    assert [c["seed"] for c in planner.calls] == [derive_seed(11, "deduce", k) for k in (1, 2, 3)]
    assert [c["warm"] for c in planner.calls] == [None, {"decision": 1}, {"decision": 2}]
    assert [len(c["seen"]) for c in planner.calls] == [0, 3, 6]
    assert all(c["pending"] == [] for c in planner.calls)
    assert indices == list(range(7))
    assert [o.values["y"] for o in loop.observations] == [0, 2, 4, 6, 8, 10, 12]
    assert all(o.predicted["y"].mean == o.parameters["x"] for o in loop.observations)
    assert len(loop.decision_s) == 3 and all(s >= 0 for s in loop.decision_s)
    assert loop.last_state == {"decision": 3}
