"""Sample efficiency on published reaction data: the Bayesian planner against random, BayBE, EDBO and chemists.

Direct arylation (Shields et al., 2021; 1,728 reactions): batches of 5, 50 experiments, seeds 0..19 by default.
Reports the mean best yield after 5, 10, 20, 30 and 50 experiments and the share of seeds at >= 99 % yield,
beside the 50 published EDBO runs and the 50 human chemists of the same paper (`simulators/data/...`).
Buchwald–Hartwig (Ahneman et al., 2018; 3,955 reactions): experiments needed to reach the top 1 % of yields.

    .venv/bin/python benchmarks/reaction_campaigns.py direct_arylation --seeds 20 [--peer-json F]
    .venv/bin/python benchmarks/reaction_campaigns.py aryl_amination --seeds 10 --experiments 100 [--peer-json F]

`--peer-json` reads a BayBE run of the same task (`benchmarks/peers/run_peer.sh baybe direct_arylation ...`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.closed_loop import best_so_far, run_lookup, run_many  # noqa: E402

DATA = REPO / "simulators" / "data"
CHECKPOINTS = (5, 10, 20, 30, 50)


def edbo_traces() -> dict[str, list[float]]:
    table = pd.read_csv(DATA / "direct_arylation" / "anchor_edbo_gp_ei_batch5.csv", index_col=0)
    return {str(i): row.dropna().tolist() for i, row in table.iterrows()}


def human_traces() -> dict[str, list[float]]:
    table = pd.read_csv(DATA / "direct_arylation" / "anchor_human_experts.csv")
    columns = [c for c in table.columns if c.startswith("yield_")]
    columns.sort(key=lambda c: int(c.split("_")[1]))
    return {str(i): row[columns].dropna().astype(float).tolist() for i, row in table.iterrows()}


def summarise(traces: dict[str, list[float]], checkpoints: tuple[int, ...] = CHECKPOINTS) -> dict[str, list]:
    """Mean best-so-far at each checkpoint over the traces long enough to reach it, and the share at >= 99."""
    means, shares, counts = [], [], []
    for k in checkpoints:
        reached = [best_so_far(t)[k - 1] for t in traces.values() if len(t) >= k]
        counts.append(len(reached))
        means.append(float(np.mean(reached)) if reached else float("nan"))
        shares.append(float(np.mean(np.array(reached) >= 99)) if reached else float("nan"))
    return {"mean": means, "share99": shares, "n": counts}


def experiments_to_reach(traces: dict[str, list[float]], level: float) -> list[int | None]:
    return [next((i + 1 for i, v in enumerate(t) if v >= level), None) for t in traces.values()]


def run(task: str, settings: dict, seeds: int, experiments: int, batch: int) -> tuple[dict[str, list[float]], float]:
    started = time.perf_counter()
    traces = run_many(run_lookup, [(task, settings, s, experiments, batch) for s in range(seeds)])
    plan_seconds = float(np.mean([np.mean(t.plan_seconds) for t in traces]))
    elapsed = time.perf_counter() - started
    print(f"{settings['kind']}: {elapsed:.0f} s, {plan_seconds:.2f} s per decision", file=sys.stderr)
    return {str(t.seed): t.values for t in traces}, plan_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["direct_arylation", "aryl_amination"])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--experiments", type=int, default=50)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--encoding", default="descriptors", choices=["descriptors", "fingerprints", "onehot"])
    parser.add_argument("--peer-json", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--reuse", type=Path, help="Take peirce's and random's traces from an earlier output instead of running."
    )
    args = parser.parse_args()

    rows: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    if args.reuse:
        earlier = json.loads(args.reuse.read_text())
        rows.update({k: earlier["traces"][k] for k in ("peirce bayesian", "random")})
        seconds.update(earlier["plan_seconds"])
    else:
        bayesian = {"kind": "bayesian", "molecule_encoding": args.encoding}
        rows["peirce bayesian"], seconds["peirce bayesian"] = run(
            args.task, bayesian, args.seeds, args.experiments, args.batch
        )
        rows["random"], seconds["random"] = run(args.task, {"kind": "random"}, args.seeds, args.experiments, args.batch)
    for path in args.peer_json:
        peer = json.loads(path.read_text())
        rows[f"{peer['peer']} {peer.get('version', '')}".strip()] = {k: v for k, v in peer["traces"].items()}
    if args.task == "direct_arylation":
        rows["EDBO (published, 50 runs)"] = edbo_traces()
        rows["human experts (published, 50)"] = human_traces()
    out = args.out or REPO / "benchmarks" / "out" / f"{args.task}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"traces": rows, "plan_seconds": seconds}, indent=1))

    if args.task == "direct_arylation":
        columns = " | ".join(f"best after {k}" for k in CHECKPOINTS)
        print(f"| planner | runs | {columns} | ≥ 99 after 20 / 30 / 50 |")
        print("|---|---:|" + "---:|" * len(CHECKPOINTS) + "---:|")
        for name, traces in rows.items():
            s = summarise(traces)
            share = " / ".join(f"{100 * s['share99'][CHECKPOINTS.index(k)]:.0f} %" for k in (20, 30, 50))
            means = " | ".join(
                f"{m:.1f}" + ("" if n == s["n"][0] else f" (n={n})") for m, n in zip(s["mean"], s["n"], strict=True)
            )
            print(f"| {name} | {len(traces)} | {means} | {share} |")
    else:
        yields = pd.read_csv(DATA / "aryl_amination" / "reactions.csv")["yield"]
        level = float(np.quantile(yields, 0.99))
        print(f"top 1 % of yields: >= {level:.1f} %")
        print("| planner | runs | reached in budget | median experiments | mean (of those reached) | best after 50 |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, traces in rows.items():
            needed = experiments_to_reach(traces, level)
            hit = [n for n in needed if n is not None]
            best50 = np.mean([best_so_far(t)[min(50, len(t)) - 1] for t in traces.values()])
            median = np.median([n if n is not None else np.inf for n in needed])
            print(f"| {name} | {len(traces)} | {len(hit)}/{len(needed)} | {median:.0f} | "
                  f"{np.mean(hit) if hit else float('nan'):.1f} | {best50:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
