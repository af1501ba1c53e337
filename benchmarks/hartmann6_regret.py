"""Hartmann-6, minimised in batches of 5 for 30 batches: log10 simple regret of the Bayesian planner, random, and
(from JSON files written by `benchmarks/peers/run_peer.sh {ax,baybe} hartmann6 ...`) Ax and BayBE, same seeds.

    .venv/bin/python benchmarks/hartmann6_regret.py --seeds 10 [--peer-json F ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.closed_loop import Trace, best_so_far, planning_loop, run_many  # noqa: E402

H6_MINIMUM = -3.32237
CHECKPOINT_BATCHES = (5, 10, 20, 30)


def run_hartmann(args: tuple[dict, int, int, int]) -> Trace:
    settings, seed, batches, batch_size = args
    from pydantic import TypeAdapter

    from planners.base import Observation, PlanningProblem
    from planners.registry import PlannerSettings, build_planner
    from planners.space import ContinuousParameter, Objective, Space
    from simulators.functions import hartmann6

    space = Space(
        parameters=tuple(ContinuousParameter(name=f"x{i}", type="continuous", bounds=(0, 1)) for i in range(1, 7))
    )
    problem = PlanningProblem(space, (Objective(name="y", direction="minimize"),))
    planner = build_planner(TypeAdapter(PlannerSettings).validate_python({**settings, "seed": seed}))

    def run(proposal: Any, index: int) -> Observation:
        value = hartmann6([proposal.parameters[f"x{i}"] for i in range(1, 7)])
        return Observation(parameters=proposal.parameters, values={"y": value}, predicted=proposal.predicted)

    loop = planning_loop(planner, problem, batches * batch_size, batch_size, seed, run)
    return Trace(seed=seed, values=[o.values["y"] for o in loop.observations], plan_seconds=loop.decision_s)


def log_regret(values: list[float], evaluations: int) -> float:
    best = best_so_far(values[:evaluations], maximize=False)[-1]
    return float(np.log10(max(best - H6_MINIMUM, 1e-12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--peer-json", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/out/hartmann6.json")
    args = parser.parse_args()

    rows: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    for name, settings in (("peirce bayesian", {"kind": "bayesian"}), ("random", {"kind": "random"})):
        started = time.perf_counter()
        traces = run_many(run_hartmann, [(settings, s, args.batches, args.batch) for s in range(args.seeds)])
        rows[name] = {str(t.seed): t.values for t in traces}
        seconds[name] = float(np.mean([np.mean(t.plan_seconds) for t in traces]))
        print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for path in args.peer_json:
        peer = json.loads(path.read_text())
        rows[f"{peer['peer']} {peer.get('version', '')}".strip()] = peer["traces"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"traces": rows, "plan_seconds": seconds}, indent=1))

    print("| planner | seeds | " + " | ".join(f"log10 regret after {b} batches" for b in CHECKPOINT_BATCHES) + " |")
    print("|---|---:|" + "---:|" * len(CHECKPOINT_BATCHES))
    for name, traces in rows.items():
        cells = []
        for b in CHECKPOINT_BATCHES:
            regrets = [log_regret(t, b * args.batch) for t in traces.values() if len(t) >= b * args.batch]
            cells.append(f"{np.mean(regrets):.2f} ± {np.std(regrets) / np.sqrt(len(regrets)):.2f}" if regrets else "—")
        print(f"| {name} | {len(traces)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
