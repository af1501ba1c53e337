"""Planning latency: one fit + propose call of the Bayesian planner at 100 / 300 / 1,000 observations and batch
sizes 4 / 16, on Hartmann-6, beside BayBE and Ax run on the same points in the same invocation.

The observations are the peers' recipe (`benchmarks/peers/peer_common.latency_points`): n uniform points from
`numpy.random.default_rng(seed + n)`. Each timed call starts cold (no warm start), as the peers' calls do; the
warm-started time (the campaign's normal case: hyper-parameters from the previous cycle) is shown beside it.
Quality is kept in view: `regret` is the best true value in the proposed batch minus the global minimum.

    .venv/bin/python benchmarks/planner_latency.py                 # peirce only
    .venv/bin/python benchmarks/planner_latency.py --peers baybe ax   # and the peers, in the same run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks" / "peers"))

from peer_common import hartmann6, latency_points  # noqa: E402

H6_MINIMUM = -3.32237


def peirce_row(n: int, batch: int, seed: int, repeats: int) -> dict:
    import torch

    from planners.base import Observation, PlanningProblem
    from planners.bo.planner import BayesianPlanner, BayesianSettings
    from planners.space import ContinuousParameter, Objective, Space

    space = Space(
        parameters=tuple(ContinuousParameter(name=f"x{i}", type="continuous", bounds=(0, 1)) for i in range(1, 7))
    )
    problem = PlanningProblem(space, (Objective(name="y", direction="minimize"),))
    X, y = latency_points(n, seed)
    observations = [
        Observation(parameters={f"x{i + 1}": float(v) for i, v in enumerate(row)}, values={"y": float(value)})
        for row, value in zip(X, y, strict=True)
    ]
    planner = BayesianPlanner(BayesianSettings(kind="bayesian", seed=seed))
    cold, warm, phases = [], [], {}
    plan = None
    for _ in range(repeats):
        started = time.perf_counter()
        plan = planner.propose(problem, observations, [], batch, seed=seed)
        cold.append(time.perf_counter() - started)
        phases = plan.model_state["seconds"]
        # The campaign's case: last cycle's fit (on the points before this batch's predecessors) warms this one.
        previous = planner.propose(problem, observations[:-batch], [], batch, seed=seed + 1)
        started = time.perf_counter()
        planner.propose(problem, observations, [], batch, seed=seed, warm_start=previous.model_state)
        warm.append(time.perf_counter() - started)
    assert plan is not None
    values = hartmann6(np.array([[p.parameters[f"x{i}"] for i in range(1, 7)] for p in plan.proposals]))
    return {
        "n_obs": n,
        "batch": batch,
        "seconds": cold,
        "warm_seconds": warm,
        "fit_seconds": phases.get("fit"),
        "acquisition_seconds": phases.get("acquisition"),
        "best_value": float(values.min()),
        "regret": float(values.min() - H6_MINIMUM),
        "threads": torch.get_num_threads(),
    }


def run_peer(peer: str, n_obs: list[int], batches: list[int], seed: int, repeats: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"{peer}.json"
        command = [
            "bash", str(REPO / "benchmarks/peers/run_peer.sh"), peer, "latency",
            "--n-obs", *map(str, n_obs), "--batch", *map(str, batches),
            "--repeats", str(repeats), "--seed", str(seed), "--threads", str(threads), "--out", str(out),
        ]  # fmt: skip
        subprocess.run(command, check=True, cwd=REPO)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-obs", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--batch", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peers", nargs="*", default=[], choices=["baybe", "ax"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/out/latency.json")
    args = parser.parse_args()

    import torch

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    results = {"peirce": {"rows": []}}
    for n in args.n_obs:
        for batch in args.batch:
            row = peirce_row(n, batch, args.seed, args.repeats)
            results["peirce"]["rows"].append(row)
            print(f"peirce n={n} b={batch}: {min(row['seconds']):.2f} s cold, {min(row['warm_seconds']):.2f} s warm, "
                  f"regret {row['regret']:.3f}", file=sys.stderr, flush=True)  # fmt: skip
    for peer in args.peers:
        results[peer] = run_peer(peer, args.n_obs, args.batch, args.seed, args.repeats, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print_table(results)


def print_table(results: dict) -> None:
    peers = [p for p in results if p != "peirce"]
    header = "| obs | batch | peirce s (cold) | peirce s (warm) | peirce regret |"
    header += "".join(f" {p} s | {p} regret | {p} / peirce time |" for p in peers)
    print(header)
    print("|" + "---:|" * (header.count("|") - 1))
    for row in results["peirce"]["rows"]:
        ours = min(row["seconds"])
        warm = min(row["warm_seconds"])
        line = f"| {row['n_obs']} | {row['batch']} | {ours:.2f} | {warm:.2f} | {row['regret']:.3f} |"
        for peer in peers:
            match = [r for r in results[peer]["rows"] if r["n_obs"] == row["n_obs"] and r["batch"] == row["batch"]]
            seconds = [s for s in (match[0]["seconds"] if match else []) if s is not None]
            if not seconds:
                line += " — | — | — |"
                continue
            line += f" {min(seconds):.2f} | {match[0]['regret']:.3f} | {min(seconds) / ours:.1f}x |"
        print(line)


if __name__ == "__main__":
    main()
