"""Closed-loop runs of a planner on a lookup table or a test function, the way a campaign runs them.

Planning seeds are derived per cycle exactly as `orchestrator.cycle.deduce.deduce` derives them, and each decision's
model state warm-starts the next, so a benchmark run is the campaign loop minus the database. Runs are spread over
processes (one torch thread each) so that several seeds share the machine fairly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@dataclass
class Trace:
    seed: int
    values: list[float]  # objective value of each experiment, in the order run
    plan_seconds: list[float] = field(default_factory=list)  # planner wall time per cycle


def _one_thread() -> None:
    import warnings

    import torch

    torch.set_num_threads(1)
    # Optimiser and jitter notices from BoTorch/GPyTorch would drown the tables; the decision records keep timings.
    warnings.simplefilter("ignore", RuntimeWarning)
    warnings.filterwarnings("ignore", module="linear_operator")


@dataclass
class LoopRun:
    """What one closed loop leaves: every observation in the order run, the wall time of each decision, and the
    last decision's model state."""

    observations: list[Any]
    decision_s: list[float]
    last_state: dict[str, Any] | None


def planning_loop(
    planner: Any,
    problem: Any,
    budget: int,
    batch_size: int,
    seed: int,
    run: Callable[[Any, int], Any],
) -> LoopRun:
    """The campaign loop minus the database: propose a batch (the seed of cycle k is `derive_seed(seed, "deduce",
    k)`, as `orchestrator.cycle.deduce` derives it; the last decision's model state warm-starts the next), run each
    proposal with `run(proposal, index)`, which returns its `Observation` (with `proposal.predicted`, so that the
    planner calibrates its stated sd on the run's own record as in a campaign), until `budget` experiments."""
    from orchestrator.records.provenance import derive_seed

    observations: list[Any] = []
    decision_s: list[float] = []
    warm: dict[str, Any] | None = None
    cycle = 0
    while len(observations) < budget:
        cycle += 1
        started = time.perf_counter()
        plan = planner.propose(
            problem,
            observations,
            [],
            min(batch_size, budget - len(observations)),
            derive_seed(seed, "deduce", cycle),
            warm_start=warm,
        )
        decision_s.append(time.perf_counter() - started)
        warm = plan.model_state
        for proposal in plan.proposals:
            observations.append(run(proposal, len(observations)))
    return LoopRun(observations, decision_s, warm)


def lookup_problem(example: str, **space_overrides: Any):
    """The planning problem and lab of an example lookup campaign (e.g. 'direct_arylation')."""
    from orchestrator.campaign.spec import load_spec
    from orchestrator.lab.build import build_lab

    spec, _ = load_spec(EXAMPLES / f"{example}.yaml")
    lab = build_lab(spec)
    return spec, lab, spec.problem(candidates=lab.candidates)


def run_lookup(args: tuple[str, dict[str, Any], int, int, int]) -> Trace:
    """One seed of a planner (by its settings) on an example lookup campaign: `experiments` in batches."""
    example, settings, seed, experiments, batch_size = args
    _one_thread()
    from pydantic import TypeAdapter

    from planners.base import Observation
    from planners.registry import PlannerSettings, build_planner

    spec, lab, problem = lookup_problem(example)
    planner = build_planner(TypeAdapter(PlannerSettings).validate_python({**settings, "seed": seed}))
    objective = spec.objectives[0].name

    def run(proposal: Any, index: int) -> Observation:
        result = lab.run(proposal.parameters, f"bench:{seed}:{index}")
        return Observation(parameters=proposal.parameters, values=dict(result.values), predicted=proposal.predicted)

    loop = planning_loop(planner, problem, experiments, batch_size, seed, run)
    return Trace(
        seed=seed,
        values=[float(o.values[objective]) for o in loop.observations],
        plan_seconds=loop.decision_s,
    )


def run_many(worker: Callable[[Any], Trace], jobs: Sequence[Any], processes: int | None = None) -> list[Trace]:
    processes = processes or min(len(jobs), os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=processes, initializer=_one_thread) as pool:
        return list(pool.map(worker, jobs))


def best_so_far(values: Sequence[float], maximize: bool = True) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return np.maximum.accumulate(array) if maximize else np.minimum.accumulate(array)
