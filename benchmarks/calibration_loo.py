"""Choose the calibration rule of stated predictions (`planners.calibration`) by leave-one-problem-out.

Reads planner-suite JSON files (`benchmarks/planner_suite.py --out F`) and, from each run's recorded predictions
and measurements in order, recomputes what each candidate rule would have stated: at each batch, a spread factor
from the standardised errors of the run's earlier predictions, measured against the model's own sd (the recorded
sd divided by the spread it was stated with). A rule does not change what the planner proposes, so one run per
problem and seed serves every rule.

For each problem, the rule chosen on the *other* problems (least total distance of their within-1-sd share from
55-80 % and of their within-2-sd share from 85-100 %) is applied to the held-out one, and its shares reported.

    .venv/bin/python benchmarks/calibration_loo.py benchmarks/out/suite.json [more.json ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np

BATCH = 5
# (statistic of |z|, factor before any check, weight of that prior in results, window of recent errors, floor)
STATISTICS = {
    "median": (0.5, 0.6745),
    "q80": (0.8, 1.2816),
    "q85": (0.85, 1.4395),
    "q90": (0.9, 1.6449),
}
RULES = list(itertools.product(STATISTICS, [1.0, 1.5, 2.0, 2.5, 3.0], [0, 3, 10], [0, 20], [0.5, 1.0]))


def errors_by_run(paths: list[Path]) -> dict[str, list[list[tuple[int, str, float]]]]:
    """problem -> runs -> (batch, objective, z against the model's own sd), in proposal order."""
    out: dict[str, list[list[tuple[int, str, float]]]] = {}
    for path in paths:
        for problem, by_seed in json.loads(path.read_text())["results"]["peirce bayesian"].items():
            for run in by_seed.values():
                rows = []
                for i, e in enumerate(run["experiments"]):
                    if not e.get("pred") or not e["feasible"]:
                        continue
                    for name, (mean, sd, *spread) in e["pred"].items():
                        own = sd / (spread[0] if spread else 1.0)
                        if name in e["observed"] and own > 0:
                            rows.append((i // BATCH, name, (e["observed"][name] - mean) / own))
                out.setdefault(problem, []).append(rows)
    return out


def factor(errors: list[float], rule: tuple) -> float:
    statistic, unchecked, weight, window, floor = rule
    errors = errors[-window:] if window else errors
    if not errors:
        return unchecked
    q, normal = STATISTICS[statistic]
    empirical = float(np.quantile(np.abs(errors), q)) / normal
    return max(floor, (weight * unchecked + len(errors) * empirical) / (weight + len(errors)))


def shares(runs: list[list[tuple[int, str, float]]], rule: tuple) -> tuple[float, float, int]:
    within1 = within2 = n = 0
    for rows in runs:
        for batch, name, z in rows:
            f = factor([zz for b, nn, zz in rows if b < batch and nn == name], rule)
            within1 += abs(z) <= f
            within2 += abs(z) <= 2 * f
            n += 1
    return within1 / max(n, 1), within2 / max(n, 1), n


def distance(within1: float, within2: float) -> float:
    return max(0.0, 0.55 - within1) + max(0.0, within1 - 0.80) + max(0.0, 0.85 - within2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    errors = errors_by_run(args.runs)
    problems = sorted(errors)
    table = {rule: {p: shares(errors[p], rule) for p in problems} for rule in RULES}
    raw = ("q80", 1.0, 1e12, 0, 0.0)  # the model's own sd: factor 1 always
    print("| held-out problem | rule chosen on the others | within 1 sd | within 2 sd | n | model's own sd: 1 / 2 |")
    print("|---|---|---:|---:|---:|---:|")
    chosen = []
    for p in problems:
        rule = min(RULES, key=lambda r: sum(distance(*table[r][q][:2]) for q in problems if q != p))
        chosen.append(rule)
        w1, w2, n = table[rule][p]
        r1, r2, _ = shares(errors[p], raw)
        print(f"| {p} | {rule} | {w1:.0%} | {w2:.0%} | {n} | {r1:.0%} / {r2:.0%} |")
    print("\nrules chosen (statistic, unchecked factor, prior weight, window, floor):", Counter(chosen).most_common())


if __name__ == "__main__":
    main()
