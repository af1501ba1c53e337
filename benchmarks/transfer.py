"""Transfer learning on the Buchwald–Hartwig table split by aryl halide: cold start against related results.

The table (Ahneman et al., Science 360, 186 (2018); `simulators/data/aryl_amination`, loaded as the planner suite
loads it, `suite_problems._aryl_amination`) has 15 aryl halides: five arenes (4-CF3-, 4-OMe- and 4-Et-phenyl,
2- and 3-pyridyl) each as chloride, bromide and iodide, and 262-264 reactions each (of 4 ligands x 3 bases x 22
additives, all molecules). Each aryl halide is one task, as in BayBE's transfer-learning example on this table
(one halide the target, another the source). A target campaign varies ligand, base and additive over its halide's
rows; its related campaigns are other halides' results:

* `cold`     no related results (the planner as a campaign without `related:`);
* `arene`    the other two halides of the same arene (Cl/Br/I of one ring: natural siblings). Across the 264
             conditions the bromide and iodide of a ring correlate 0.85-0.94; a chloride with its siblings 0.08-0.95
             (0.87-0.95 on 2-pyridyl, 0.08-0.63 on the others: aryl chlorides hardly react under most conditions);
* `chloride` the chlorides of the first two other arenes in ARENES' order: for a bromide or iodide target a poor
             match (correlation 0.07-0.52), where transfer can mislead; for a chloride target the same halogen on
             other rings (3-chloropyridine: 0.76 with the CF3-phenyl chloride, 0.23 with the OMe-phenyl one).

Each related campaign contributes a random draw of `--related-per-task` of its results (a campaign run earlier is
finished, not exhaustive; the draw depends on the seed). Batches of 5, seeds 0-9, the planner's default settings
(`{"kind": "bayesian", "seed": seed}`), run through its Python API as `benchmarks/planner_suite.py` does: cycle k's
planning seed is `derive_seed(seed, "deduce", k)`, each decision warm-starts the next. Every setting of a seed starts
from the same space-filling first batch (the planner's, before it models; with related results too).

Metrics per target and setting: how many seeds reached the target's top 1 % (the value of the ceil(1 %)-th best of
its rows, i.e. the 3rd best of 264) within the budget, the median experiments until they did (a seed that did not
counts as more than the budget), and the mean best yield after 10 and 20 experiments. Prints one table; asserts
nothing.

    .venv/bin/python benchmarks/transfer.py                       # 5 targets x 3 settings x seeds 0-9, 30 experiments
    .venv/bin/python benchmarks/transfer.py --quick               # 2 targets, seeds 0-2, cold and arene
    .venv/bin/python benchmarks/transfer.py --targets Ic1ccccn1 --settings cold,arene --seeds 0-4 --processes 2
    .venv/bin/python benchmarks/transfer.py --from-json out/a.json out/b.json   # one table of runs saved by --out
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks" / "peers"))

import suite_problems as sp  # noqa: E402
from peer_common import parse_seeds  # noqa: E402

from benchmarks.closed_loop import _one_thread, planning_loop  # noqa: E402

HALIDE = "aryl_halide"
CONDITIONS = ("ligand", "base", "additive")
# Each arene as chloride, bromide and iodide (the table's SMILES).
ARENES = {
    "4-CF3-phenyl": ("FC(F)(F)c1ccc(Cl)cc1", "FC(F)(F)c1ccc(Br)cc1", "FC(F)(F)c1ccc(I)cc1"),
    "4-OMe-phenyl": ("COc1ccc(Cl)cc1", "COc1ccc(Br)cc1", "COc1ccc(I)cc1"),
    "4-Et-phenyl": ("CCc1ccc(Cl)cc1", "CCc1ccc(Br)cc1", "CCc1ccc(I)cc1"),
    "2-pyridyl": ("Clc1ccccn1", "Brc1ccccn1", "Ic1ccccn1"),
    "3-pyridyl": ("Clc1cccnc1", "Brc1cccnc1", "Ic1cccnc1"),
}
TARGETS = ("Ic1ccccn1", "COc1ccc(I)cc1", "CCc1ccc(Br)cc1", "FC(F)(F)c1ccc(Br)cc1", "Clc1cccnc1")
QUICK_TARGETS = ("Ic1ccccn1", "CCc1ccc(Br)cc1")
SETTINGS = ("cold", "arene", "chloride")
BATCH = 5


def arene_of(halide: str) -> str:
    return next(name for name, halides in ARENES.items() if halide in halides)


def related_halides(target: str, setting: str) -> list[str]:
    """The halides whose results a target's campaign is given under `setting`."""
    arene = arene_of(target)
    if setting == "cold":
        return []
    if setting == "arene":
        return [h for h in ARENES[arene] if h != target]
    if setting == "chloride":
        others = [name for name in ARENES if name != arene]
        return [ARENES[name][0] for name in others[:2]]  # the first two other arenes' chlorides, in table order
    raise ValueError(f"unknown setting {setting!r}; known: {', '.join(SETTINGS)}")


def task_rows(table: Any, halide: str) -> list[tuple[dict[str, str], float]]:
    """The halide's reactions as (conditions, yield), repeats merged into their mean (as the suite's pools do)."""
    rows = table[table[HALIDE] == halide].groupby(list(CONDITIONS), as_index=False)["yield"].mean()
    return [({c: str(r[c]) for c in CONDITIONS}, float(r["yield"])) for _, r in rows.iterrows()]


def run_one(job: tuple[str, str, int, int, int]) -> dict[str, Any]:
    """One seed of one target under one setting."""
    target, setting, seed, budget, per_task = job
    from planners.base import Observation, PlanningProblem, RelatedResults
    from planners.bo.planner import BayesianPlanner
    from planners.settings import BayesianSettings
    from planners.space import MoleculeParameter, Objective, Space

    table = sp._aryl_amination()
    parameters = tuple(
        MoleculeParameter(name=c, type="molecule", smiles={s: s for s in sorted(table[c].unique())}) for c in CONDITIONS
    )
    rows = task_rows(table, target)
    lookup = {tuple(p[c] for c in CONDITIONS): y for p, y in rows}
    space = Space(parameters=parameters, candidates=[p for p, _ in rows])
    rng = np.random.default_rng([seed, 17])
    related = []
    for halide in related_halides(target, setting):
        results = task_rows(table, halide)
        picked = rng.choice(len(results), size=min(per_task, len(results)), replace=False)
        related.append(
            RelatedResults(halide, tuple(Observation(results[i][0], {"yield": results[i][1]}) for i in sorted(picked)))
        )
    problem = PlanningProblem(space, (Objective(name="yield", direction="maximize"),), related=tuple(related))
    planner = BayesianPlanner(BayesianSettings(kind="bayesian", seed=seed))

    def run(proposal: Any, index: int) -> Observation:
        point = dict(proposal.parameters)
        return Observation(point, {"yield": lookup[tuple(point[c] for c in CONDITIONS)]}, predicted=proposal.predicted)

    loop = planning_loop(planner, problem, budget, BATCH, seed, run)
    values = [o.values["yield"] for o in loop.observations]
    decision_s, warm = loop.decision_s, loop.last_state
    return {
        "target": target,
        "setting": setting,
        "seed": seed,
        "related": [r.name for r in related],
        "values": values,
        "top": sp.top_one_percent([y for _, y in rows]),
        "decision_s": decision_s,
        "transfer": (warm or {}).get("transfer"),
    }


def experiments_to_top(values: Sequence[float], top: float) -> int | None:
    for i, v in enumerate(values, start=1):
        if v >= top:
            return i
    return None


def best_after(values: Sequence[float], n: int) -> float:
    return max(values[:n])


def table(runs: list[dict[str, Any]], targets: Sequence[str], settings: Sequence[str], budget: int) -> str:
    lines = [
        "| target (aryl halide) | related results | reached top 1 % | median experiments to top 1 % | "
        "best after 10 | best after 20 | s / decision |",
        "|---|---|---|---|---|---|---|",
    ]
    for target in targets:
        for setting in settings:
            mine = [r for r in runs if r["target"] == target and r["setting"] == setting]
            if not mine:
                continue
            hits = [experiments_to_top(r["values"], r["top"]) for r in mine]
            reached = [h for h in hits if h is not None]
            # A seed that never reached it counts as more than the budget: the median is then "> budget".
            ordered = sorted(h if h is not None else math.inf for h in hits)
            median = float(np.median(ordered)) if len(reached) * 2 > len(hits) else math.inf
            median_text = f"{median:.0f}" if math.isfinite(median) else f"> {budget}"
            related = ", ".join(mine[0]["related"]) or "none"
            after = [
                f"{np.mean([best_after(r['values'], n) for r in mine]):.1f}" if budget >= n else "—" for n in (10, 20)
            ]
            seconds = np.mean([s for r in mine for s in r["decision_s"][1:]] or [0.0])
            lines.append(
                f"| {target} (top 1 % ≥ {mine[0]['top']:.1f}) | {setting}: {related} | {len(reached)}/{len(hits)} | "
                f"{median_text} | {after[0]} | {after[1]} | {seconds:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets", default=None, help=f"comma-separated halide SMILES (default: {', '.join(TARGETS)})"
    )
    parser.add_argument("--settings", default=None, help=f"comma-separated, of: {', '.join(SETTINGS)}")
    parser.add_argument("--seeds", default=None, help="e.g. 0-9 (default 0-9; --quick: 0-2)")
    parser.add_argument("--experiments", type=int, default=30, help="budget of each run (batches of 5)")
    parser.add_argument("--related-per-task", type=int, default=60, help="results drawn from each related halide")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 targets, seeds 0-2, cold and arene")
    parser.add_argument("--out", type=Path, default=None, help="JSON of every run")
    parser.add_argument(
        "--from-json", type=Path, nargs="*", default=[], help="print the table of runs saved by --out, run nothing"
    )
    args = parser.parse_args()
    if args.from_json:
        saved = [run for path in args.from_json for run in json.loads(path.read_text(encoding="utf-8"))]
        order = lambda key: list(dict.fromkeys(run[key] for run in saved))  # noqa: E731
        seeds_seen = sorted({run["seed"] for run in saved})
        print(f"{len(saved)} runs from {len(args.from_json)} files, seeds {', '.join(map(str, seeds_seen))}")
        print(table(saved, order("target"), order("setting"), args.experiments))
        return

    targets = args.targets.split(",") if args.targets else list(QUICK_TARGETS if args.quick else TARGETS)
    settings = args.settings.split(",") if args.settings else (["cold", "arene"] if args.quick else list(SETTINGS))
    seeds = parse_seeds(args.seeds or ("0-2" if args.quick else "0-9"))
    jobs = [(t, s, seed, args.experiments, args.related_per_task) for t in targets for s in settings for seed in seeds]
    started = time.perf_counter()
    if args.processes > 1:
        import multiprocessing

        # One torch thread per process: the processes share the cores.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with multiprocessing.get_context("spawn").Pool(args.processes, initializer=_one_thread) as pool:
            runs = pool.map(run_one, jobs, chunksize=1)
    else:
        runs = [run_one(job) for job in jobs]
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(runs, indent=1), encoding="utf-8")
    print(
        f"Buchwald–Hartwig by aryl halide: {len(targets)} targets x {len(settings)} settings x seeds {seeds[0]}-"
        f"{seeds[-1]}, {args.experiments} experiments in batches of {BATCH}, {args.related_per_task} results per "
        f"related halide; {time.perf_counter() - started:.0f} s"
    )
    print(table(runs, targets, settings, args.experiments))


if __name__ == "__main__":
    main()
