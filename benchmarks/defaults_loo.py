"""Choose a planner default by leave-one-problem-out: the default's runs against candidates' runs on the suite.

Reads planner-suite JSON files (`benchmarks/planner_suite.py --out F`, peirce's Bayesian rows): one taken with the
defaults, one per candidate (`--planner JSON`), same seeds. Seeds pair the runs: a seed gives both the same first,
space-filling batch, so the comparison on a problem is paired. For each problem and each budget of the suite's
table, a candidate's *win rate* is the share of seeds whose score it beats (ties count half; the score is the
suite's: best value, regret or hypervolume, `suite_problems.score`); its win rate on a problem is the mean over the
three budgets, so early and late budgets count alike.

Leave-one-problem-out: with each problem held out in turn, the setting with the highest mean win rate over the
other problems is chosen (the default's own win rate is 0.5; it wins ties); the table shows, on the held-out
problem, what that choice does there (its win rate and mean scores against the default's). A setting is worth
adopting when the choice made without a problem also serves it — the held-out win rates say how often.

`--same-as-default P` names problems where a candidate's model is the default's by construction (e.g. a
length-scale prior for numeric parameters, on a space of molecules only): its runs there are the default's.

    .venv/bin/python benchmarks/defaults_loo.py --default default.json --candidate split=split.json \\
        --same-as-default aryl_amination
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import suite_problems as sp  # noqa: E402
from planner_suite import fmt_score  # noqa: E402

METHOD = "peirce bayesian"


def runs_of(path: Path) -> dict[str, dict[str, Any]]:
    """problem -> seed -> run, peirce's Bayesian planner."""
    return json.loads(path.read_text())["results"][METHOD]


def better(problem: sp.Problem, a: float, b: float) -> float:
    """1 when score `a` beats `b` on this problem, 0.5 for a tie, 0 otherwise (nan, nothing feasible, loses)."""
    if math.isnan(a) or math.isnan(b):
        return 0.5 if math.isnan(a) and math.isnan(b) else float(not math.isnan(a))
    if math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12):
        return 0.5
    if problem.is_multiobjective:
        return float(a > b)  # hypervolume
    if problem.kind == "pool":
        return float(a > b if problem.objectives[0].sign > 0 else a < b)  # best value found
    return float(a < b)  # regret


def compare(name: str, default: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """Paired comparison on one problem: win rate over seeds and budgets, mean scores of both at each budget."""
    problem = sp.get(name)
    seeds = sorted(set(default) & set(candidate), key=int)
    if not seeds:
        raise ValueError(f"{name}: no seed run by both the default and the candidate")
    wins, means = [], []
    for k in problem.checkpoints:
        ours = [sp.score(problem, default[s]["experiments"], k) for s in seeds]
        theirs = [sp.score(problem, candidate[s]["experiments"], k) for s in seeds]
        wins.append(float(np.mean([better(problem, t, o) for t, o in zip(theirs, ours, strict=True)])))
        means.append((float(np.nanmean(ours)), float(np.nanmean(theirs))))
    return {"win": float(np.mean(wins)), "wins": wins, "means": means, "seeds": len(seeds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--default", type=Path, required=True, help="suite JSON taken with the defaults")
    parser.add_argument("--candidate", nargs="+", required=True, help="NAME=suite JSON of a candidate setting")
    parser.add_argument("--same-as-default", nargs="*", default=[], help="problems where a candidate is the default")
    args = parser.parse_args()

    def read(path: Path, option: str) -> dict[str, dict[str, Any]]:
        try:
            return runs_of(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # missing, not JSON, or not a suite's output
            parser.error(f"{option} {path}: not a planner-suite JSON with {METHOD!r} runs ({exc!r})")

    default = read(args.default, "--default")
    candidates = {}
    for item in args.candidate:
        label, _, path = item.partition("=")
        if not path:
            parser.error(f"--candidate {item!r}: expected NAME=FILE")
        runs = read(Path(path), "--candidate")
        for name in args.same_as_default:
            if name not in default:
                parser.error(f"--same-as-default {name}: not a problem of the default's runs")
            runs.setdefault(name, default[name])
        candidates[label] = runs
    problems = [p for p in sp.PROBLEM_NAMES if p in default and all(p in c for c in candidates.values())]
    left = sorted(set(default) - set(problems))
    try:
        comparisons = {c: {p: compare(p, default[p], runs[p]) for p in problems} for c, runs in candidates.items()}
    except ValueError as exc:
        parser.error(str(exc))

    print("Paired win rate of each candidate against the default (share of seeds it beats, mean over the budgets;")
    print("mean scores default -> candidate at each budget):\n")
    print("| problem (budgets) | seeds | " + " | ".join(f"{c}: win rate | {c}: scores" for c in candidates) + " |")
    print("|---|---:|" + "---:|---|" * len(candidates))
    for p in problems:
        budgets = " / ".join(map(str, sp.get(p).checkpoints))
        cells = []
        for c in candidates:
            r = comparisons[c][p]
            scores = ", ".join(f"{fmt_score(d)} → {fmt_score(t)}" for d, t in r["means"])
            cells.append(f"{r['win']:.2f} | {scores}")
        seeds = comparisons[next(iter(candidates))][p]["seeds"]
        print(f"| {p} ({budgets}) | {seeds} | " + " | ".join(cells) + " |")

    print("\nLeave-one-problem-out: the setting chosen on the other problems (highest mean win rate; the default's")
    print("is 0.5 and it wins ties), and what it does on the held-out one:\n")
    print("| held-out problem | mean win rate on the others | chosen | win rate on the held-out problem |")
    print("|---|---|---|---:|")
    served = 0
    for held in problems:
        others = [p for p in problems if p != held]
        rates = {c: float(np.mean([comparisons[c][p]["win"] for p in others])) for c in candidates}
        best = max(rates, key=lambda c: rates[c])
        chosen = best if rates[best] > 0.5 else "default"
        there = comparisons[chosen][held]["win"] if chosen != "default" else 0.5
        served += there >= 0.5
        shown = ", ".join(f"{c} {r:.2f}" for c, r in rates.items())
        print(f"| {held} | {shown} | {chosen} | {there:.2f} |")
    print(f"\nThe choice made without a problem serves it (win rate ≥ 0.5 there) on {served} of {len(problems)}.")
    if left:
        print(f"Not compared (missing from a candidate's file): {', '.join(left)}.")


if __name__ == "__main__":
    main()
