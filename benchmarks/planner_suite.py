"""The planner suite: peirce's Bayesian planner (defaults), random, BayBE and Ax on ten published problems, one table.

Problems (`benchmarks/suite_problems.py`, sources and licences there and in the table's notes): two reaction
tables (direct arylation, Buchwald–Hartwig), four Olympus tables (HPLC, two photovoltaic blends, fullerenes) as
pools of candidates whose objective is looked up, and four BoTorch test functions (Branin, Hartmann-6 with noise,
Gramacy's constrained problem, Branin–Currin with two objectives) on their continuous boxes.

    .venv/bin/python benchmarks/planner_suite.py --seeds 0-9 --peers baybe ax --out benchmarks/out/suite.json
    .venv/bin/python benchmarks/planner_suite.py --quick            # 1 seed, 10 experiments, two problems
    ... --peer-processes 5                 # each peer's seeds shared among 5 runner processes (a bigger machine)
    ... --skip ax:direct_arylation ax:aryl_amination    # leave out a method on a problem ("not run" in the table)

How each method is run:
* peirce bayesian and random: through the planner's Python API (`planners.registry.build_planner` +
  `propose`), the campaign loop minus the database, as `benchmarks/hartmann6_regret.py` does: the planning seed of
  cycle k is `derive_seed(seed, "deduce", k)`, each decision's model state warm-starts the next. Default settings
  (`{"kind": "bayesian", "seed": seed}`). Pools are spaces with `candidates` (the rows); an infeasible experiment
  (constraint broken) is an `Observation(feasible=False)` with no value, as a campaign records it.
* BayBE and Ax: `benchmarks/peers/run_peer.sh PEER suite ...` in their own environments, same seeds, their default
  recommenders / generation strategies (initial designs included) as in their other subcommands; see
  `benchmarks/peers/README.md` ("suite").

Scores at each budget (experiments, batches of 5): pools — mean best value found; functions — mean simple regret
of the best true (noise-free) feasible value; two objectives — mean hypervolume of the true values. "Top 1 %": the
share of seeds whose score at the last budget is in the top 1 % (`suite_problems.reached_top`). Calibration: the
share of measured values within 1 and 2 predicted standard deviations of the prediction recorded when the point
was proposed (peirce: `Proposal.predicted`, the predicted measurement: mean, and the sd of latent function and noise
times the spread factor calibrated on the run's own record, `planners.calibration`; BayBE: `Campaign.posterior_stats`;
Ax: `Client.predict`), over the experiments that had one. Seconds per decision: mean wall time of one
propose / recommend / get_next_trials call for a batch (the peers' prediction calls are not counted).
Several objectives: calibration pools both objectives' predictions.
The script prints the table and asserts nothing; the JSON (`--out`) keeps every experiment of every run, and each
peer's own JSON lies beside it (`<out>.baybe.json`, `<out>.ax.json`).

Cost (estimated from smoke runs and the timings in benchmarks/RESULTS.md, two shared cores, ±2x): 70 decisions per
seed and method. peirce ~4 min per seed (~20 min for seeds 0-9 on two processes); BayBE ~7 min per seed
(Branin–Currin's ParetoObjective ~40 s a batch dominates); Ax ~55 min per seed, of which ~45 min are the two
reaction tables (its one-hot mixed optimiser: 100-350 s a batch there). Seeds 0-9, peers side by side: ~10 h;
with `--skip ax:direct_arylation ax:aryl_amination` ~2-2.5 h; `--peer-processes` divides the peers' share on a
machine with more cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "benchmarks" / "peers"))

import suite_problems as sp  # noqa: E402
from peer_common import parse_seeds  # noqa: E402

from benchmarks.closed_loop import planning_loop  # noqa: E402

QUICK_PROBLEMS = ("fullerenes", "gramacy_constrained")
QUICK_EXPERIMENTS = 10
METHODS = ("peirce bayesian", "random")


# ---------------------------------------------------------------------------------------------- peirce and random
def peirce_space(problem: sp.Problem) -> Any:
    from planners.space import (
        CategoricalParameter,
        ContinuousParameter,
        DiscreteParameter,
        MoleculeParameter,
        Space,
    )

    parameters = []
    for p in problem.parameters:
        if p.kind == "continuous":
            parameters.append(ContinuousParameter(name=p.name, type="continuous", bounds=p.bounds))
        elif p.kind == "discrete":
            parameters.append(DiscreteParameter(name=p.name, type="discrete", values=list(p.values)))
        elif p.kind == "categorical":
            parameters.append(CategoricalParameter(name=p.name, type="categorical", levels=list(p.values)))
        else:
            parameters.append(MoleculeParameter(name=p.name, type="molecule", smiles=dict(p.smiles)))
    candidates = problem.candidates() if problem.kind == "pool" else None
    return Space(parameters=tuple(parameters), candidates=candidates)


def run_peirce(job: tuple[str, str, int, int, dict[str, Any]]) -> dict:
    """One seed of peirce's Bayesian planner (defaults, or with `settings` over them) or random planner on one
    problem."""
    method, name, seed, budget, settings = job
    from pydantic import TypeAdapter

    from planners.base import Observation, PlanningProblem
    from planners.registry import PlannerSettings, build_planner
    from planners.space import Objective

    problem = sp.get(name)
    planning = PlanningProblem(
        peirce_space(problem),
        tuple(Objective(name=o.name, direction=o.direction, reference=o.reference) for o in problem.objectives),
    )
    kind = "bayesian" if method == "peirce bayesian" else "random"
    chosen = {"kind": kind, "seed": seed, **(settings if kind == "bayesian" else {})}
    planner = build_planner(TypeAdapter(PlannerSettings).validate_python(chosen))
    experiments: list[dict] = []

    def run(proposal: Any, index: int) -> Observation:
        point = dict(proposal.parameters)
        outcome = problem.evaluate(point, seed, index)
        pred = {k: [v.mean, v.std, v.spread] for k, v in proposal.predicted.items()} or None
        experiments.append({"x": point, "pred": pred, **outcome})
        if not outcome["feasible"]:
            return Observation(parameters=point, values={}, feasible=False)  # as a campaign records it
        return Observation(parameters=point, values=outcome["observed"], predicted=proposal.predicted)

    started = time.perf_counter()
    loop = planning_loop(planner, planning, budget, problem.batch_size, seed, run)
    return {
        "method": method,
        "problem": name,
        "seed": seed,
        "experiments": experiments,
        "decision_s": loop.decision_s,
        "wall_s": time.perf_counter() - started,
    }


def run_ours(
    problems: dict[str, list[str]],
    seeds: list[int],
    budgets: dict[str, int],
    processes: int,
    settings: dict[str, Any] | None = None,
) -> dict:
    """`problems`: method -> the problems it runs; `settings`: the Bayesian planner's, over its defaults."""
    from benchmarks.closed_loop import _one_thread

    jobs = [(m, p, s, budgets[p], settings or {}) for m in METHODS for p in problems[m] for s in seeds]
    results: dict[str, dict] = {m: {p: {} for p in problems[m]} for m in METHODS}
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=max(1, min(processes, len(jobs))), initializer=_one_thread) as pool:
        futures = {pool.submit(run_peirce, job): job for job in jobs}
        for future in as_completed(futures):
            run = future.result()
            results[run["method"]][run["problem"]][str(run["seed"])] = run
            problem = sp.get(run["problem"])
            score = sp.score(problem, run["experiments"], budgets[run["problem"]])
            print(f"[{run['method']}] {run['problem']} seed {run['seed']}: {sp.metric_name(problem)}={score:.4g} "
                  f"wall={run['wall_s']:.1f}s", file=sys.stderr, flush=True)  # fmt: skip
    return results


# ---------------------------------------------------------------------------------------------- peers
def run_peer(peer: str, problems: list[str], seeds: str, cap: int | None, threads: int, out: Path) -> subprocess.Popen:
    command = [
        "bash", str(REPO / "benchmarks/peers/run_peer.sh"), peer, "suite", "--problems", ",".join(problems),
        "--seeds", seeds, "--threads", str(threads), "--out", str(out),
    ]  # fmt: skip
    if cap is not None:
        command += ["--max-experiments", str(cap)]
    return subprocess.Popen(command, cwd=REPO)


def peer_results(path: Path) -> tuple[str, dict]:
    data = json.loads(path.read_text())
    label = f"{data['peer']} {data.get('version', '')}".strip()
    return label, data.get("results", {})


# ---------------------------------------------------------------------------------------------- the table
def calibration(runs: list[dict]) -> tuple[float, float, int]:
    inside1 = inside2 = total = 0
    for run in runs:
        for e in run["experiments"]:
            if not e.get("pred") or not e["feasible"]:
                continue
            for name, (mean, sd, *_) in e["pred"].items():
                if name not in e["observed"] or sd is None or not math.isfinite(sd):
                    continue
                error = abs(e["observed"][name] - mean)
                inside1 += error <= sd
                inside2 += error <= 2 * sd
                total += 1
    if not total:
        return float("nan"), float("nan"), 0
    return inside1 / total, inside2 / total, total


def fmt_score(value: float) -> str:
    """A score for a table: three significant figures below 1, two decimals below 100, none above."""
    if math.isnan(value):
        return "—"
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(problems: list[str], methods: dict[str, dict], budgets: dict[str, int], skipped: dict) -> str:
    lines = [
        "| problem (score; budgets) | method | seeds | score at budget 1 | budget 2 | budget 3 | top 1 % at last "
        "budget | within 1 sd | within 2 sd | s / decision |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in problems:
        problem = sp.get(name)
        checkpoints = [c for c in problem.checkpoints if c <= budgets[name]] or [budgets[name]]
        head = f"{name} ({sp.metric_name(problem)}; {' / '.join(map(str, checkpoints))})"
        for method, results in methods.items():
            runs = list(results.get(name, {}).values())
            if not runs:
                reason = skipped.get((method.split()[0], name), "not run")
                lines.append(f"| {head} | {method} | 0 | {reason} | | | | | | |")
                continue
            cells = []
            for k in checkpoints:
                scores = [sp.score(problem, r["experiments"], k) for r in runs if len(r["experiments"]) >= k]
                scores = [s for s in scores if not math.isnan(s)]
                if not scores:
                    cells.append("—")
                    continue
                mean = float(np.mean(scores))
                se = float(np.std(scores) / np.sqrt(len(scores))) if len(scores) > 1 else float("nan")
                cells.append(fmt_score(mean) + ("" if math.isnan(se) else f" ± {fmt_score(se)}"))
            cells += [""] * (3 - len(cells))
            last = checkpoints[-1]
            top = np.mean([sp.reached_top(problem, sp.score(problem, r["experiments"], last)) for r in runs])
            within1, within2, n = calibration(runs)
            calib = ("—", "—") if n == 0 else (f"{100 * within1:.0f} % (n={n})", f"{100 * within2:.0f} %")
            seconds = [s for r in runs for s in r["decision_s"]]
            lines.append(
                f"| {head} | {method} | {len(runs)} | {' | '.join(cells[:3])} | {100 * top:.0f} % | "
                f"{calib[0]} | {calib[1]} | {np.mean(seconds):.2f} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=None, help="e.g. 0-9 (default 0-9; --quick: 0)")
    parser.add_argument("--problems", default=None, help=f"comma-separated, of: {', '.join(sp.PROBLEM_NAMES)}")
    parser.add_argument("--peers", nargs="*", default=[], choices=["baybe", "ax"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/out/suite.json")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: seed 0, {QUICK_EXPERIMENTS} experiments, "
                        f"{' and '.join(QUICK_PROBLEMS)} unless --problems/--seeds say otherwise")  # fmt: skip
    parser.add_argument("--max-experiments", type=int, default=None, help="cap on every problem's budget")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="processes for peirce/random")
    parser.add_argument("--peer-threads", type=int, default=1, help="torch threads of each peer process")
    parser.add_argument(
        "--peer-processes", type=int, default=1, help="runner processes per peer, each taking a share of the seeds"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], help="METHOD:PROBLEM pairs not to run, e.g. ax:aryl_amination (method: "
        "peirce, random, baybe, ax)"
    )  # fmt: skip
    parser.add_argument("--peer-json", type=Path, nargs="*", default=[], help="take peer results from these files")
    parser.add_argument(
        "--planner", type=json.loads, default={}, help='peirce\'s Bayesian settings over the defaults, as JSON, e.g. '
        '\'{"length_scale_prior": "gamma"}\' (to compare a candidate default)'
    )  # fmt: skip
    args = parser.parse_args()

    problems = args.problems.split(",") if args.problems else list(QUICK_PROBLEMS if args.quick else sp.PROBLEM_NAMES)
    unknown = [p for p in problems if p not in sp.PROBLEM_NAMES]
    if unknown:
        parser.error(f"unknown problems {unknown}; known: {', '.join(sp.PROBLEM_NAMES)}")
    seeds_spec = args.seeds or ("0" if args.quick else "0-9")
    seeds = parse_seeds(seeds_spec)
    cap = args.max_experiments or (QUICK_EXPERIMENTS if args.quick else None)
    budgets = {p: sp.get(p).experiments if cap is None else min(cap, sp.get(p).experiments) for p in problems}
    skip = {tuple(s.split(":", 1)) for s in args.skip}
    skipped = {s: "not run (--skip)" for s in skip}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    peers: dict[str, list[tuple[subprocess.Popen, Path]]] = {}
    methods: dict[str, dict] = {}
    # Ours first, on all processes; then the peers side by side (--peer-processes each), so timings compare.
    ours_problems = {m: [p for p in problems if (m.split()[0], p) not in skip] for m in METHODS}
    ours = run_ours(ours_problems, seeds, budgets, args.processes, args.planner)
    methods.update(ours)
    ours_s = time.perf_counter() - started
    # Each peer's seeds are dealt round-robin to --peer-processes runners (one JSON each, merged here).
    groups = [seeds[i :: args.peer_processes] for i in range(min(args.peer_processes, len(seeds)))]
    for peer in args.peers:
        todo = [p for p in problems if (peer, p) not in skip]
        if not todo:
            continue
        peers[peer] = []
        # Build (or check) the peer's environment once, before its runners start side by side.
        subprocess.run(["bash", str(REPO / "benchmarks/peers/setup.sh"), peer], check=True, cwd=REPO)
        for i, group in enumerate(groups):
            part = "" if len(groups) == 1 else f".{i}"
            out = args.out.with_name(f"{args.out.stem}.{peer}{part}.json")
            group_spec = ",".join(map(str, group))
            peers[peer].append((run_peer(peer, todo, group_spec, cap, args.peer_threads, out), out))
    for peer, runs in peers.items():
        merged: dict[str, dict] = {}
        label = peer
        for process, out in runs:
            if process.wait() != 0:
                print(
                    f"{peer}: a runner failed (exit {process.returncode}); partial results from {out}", file=sys.stderr
                )
            if out.exists():
                label, results = peer_results(out)
                for problem, by_seed in results.items():
                    merged.setdefault(problem, {}).update(by_seed)
        methods[label] = merged
    for path in args.peer_json:
        label, results = peer_results(path)
        methods[label] = results
    for peer in args.peers:
        for p in problems:
            if (peer, p) in skip:
                skipped[(peer, p)] = "not run (--skip)"
    markdown = table(problems, methods, budgets, skipped)
    notes = "\n".join(f"- {p}: {sp.get(p).title}. Source: {sp.get(p).source}. Licence: {sp.get(p).licence}."
                      for p in problems)  # fmt: skip
    elapsed = time.perf_counter() - started
    header = (
        f"Seeds {seeds_spec}; batches of {sp.get(problems[0]).batch_size}; budgets in experiments. "
        f"Wall time: {elapsed:.0f} s (peirce and random {ours_s:.0f} s on {args.processes} processes). "
        f"peirce's settings over the defaults: {json.dumps(args.planner) if args.planner else 'none'}."
    )
    args.out.write_text(
        json.dumps(
            {
                "seeds": seeds,
                "budgets": budgets,
                "peirce_settings": args.planner,
                "problems": {p: sp.get(p).describe() for p in problems},
                "results": methods,
                "table": markdown,
                "wall_s": elapsed,
            },
            indent=1,
        )
    )
    print(header)
    print()
    print(markdown)
    print()
    print(notes)


if __name__ == "__main__":
    main()
