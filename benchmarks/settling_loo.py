"""When should the hypothesis ledger call a claim settled? Its settling rules chosen by leave-one-problem-out.

A claim is settled (`planners/hypotheses/settings.py`) once its credence has stayed at or past a threshold
(`support_threshold`, `refute_threshold`) for `confirm_cycles` consecutive cycles and at least `min_evidence`
completed experiments have tested it. The defaults were tuned on the two reaction tables alone; here every rule
of a grid is scored on more tables, and each held-out table is scored with the rule chosen on the others.

Problems: the direct-arylation and Buchwald–Hartwig tables (the example campaign files) and Olympus lookup tables
from `benchmarks/suite_problems.py` (fullerenes: a 6 x 6 x 6 grid; photo_pce10 and photo_wf3: four-component
blends on a simplex grid; hplc: 1,007 scattered rows, so a claim about a numeric level is decided on the rows
within 1 % of it, unpaired). An Olympus table becomes a lookup campaign whose parameters are discrete, with the
table's values (to 9 significant digits, as the lookup matches them).

Recording: each (problem, seed) runs ONCE as a campaign of 50 experiments in batches of 5 (inline engine,
temporary SQLite file, `hypotheses: model`) with settling switched off (`confirm_cycles` 1000) and room for ten
open claims (`max_open` 10, default 6), since claims that never settle would otherwise stop abduction after six.
Each claim's credence and evidence (completed experiments that tested it, as the ledger counts them for
`min_evidence`) are read per cycle from `hypothesis_credences`, and the claim is decided against the full table
(`benchmarks/claim_truth.py`).

Replay: a rule settles a claim at the first cycle whose condition holds, judged on the trajectory up to that cycle,
which is what a campaign under that rule would have seen of that claim. A claim that a measured result demonstrated (an
attainability claim passed by a result) is settled `supported` then, under every rule, as the ledger does. This is
an approximation: under a real rule a settled claim stops being tested and frees a slot for a new claim, so the
recorded campaign tests its claims a little more thinly than a campaign with settling on would, and proposes
different claims later on.

Leave-one-problem-out: for each held-out problem the rule is chosen on the other problems by one objective:
the most claims settled per 50 experiments (mean over those problems) among the rules whose precision, pooled over
those problems, is at least 0.9 for `supported` (share true) and for `refuted` (share false) alike, the target
the hypothesis benchmark set; ties go to the stricter rule. Settling sooner is the point of a looser rule; the
precision floor is what makes a settled claim worth reading. The chosen rule's held-out rate and precision are
shown beside the current default's, and again with a floor of 0.95 to show how much the choice leans on it.

Prints markdown; asserts nothing. Raw records go to `benchmarks/out/settling_loo.json`.

    .venv/bin/python benchmarks/settling_loo.py --seeds 8 [--problems fullerenes hplc ...] [--reuse]

With `--reuse` only the runs missing from the JSON are made; the tables are always recomputed from all of them.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.claim_truth import claim_truth  # noqa: E402
from benchmarks.closed_loop import EXAMPLES, _one_thread  # noqa: E402
from benchmarks.hypothesis_precision import run_missing, run_spec, share, spec_table, spec_text  # noqa: E402

REACTIONS = ("direct_arylation", "aryl_amination")
OLYMPUS = ("fullerenes", "photo_pce10", "photo_wf3", "hplc")
PROBLEMS = (*REACTIONS, *OLYMPUS)
OUT = REPO / "benchmarks" / "out" / "settling_loo.json"
TABLES = REPO / "benchmarks" / "out" / "settling_loo_tables"  # Olympus tables with a header, for the lookup lab
EXPERIMENTS, BATCH = 50, 5
# Settling off while recording: no credence can hold past a threshold for 1000 cycles of a 10-cycle campaign.
RECORDING = {"source": "model", "confirm_cycles": 1000, "max_open": 10}
FLOORS = (0.9, 0.95)  # the first is the objective; the second shows how the choice depends on it


@dataclass(frozen=True, order=True)
class Rule:
    support: float
    refute: float
    min_evidence: int
    confirm_cycles: int

    def name(self) -> str:
        return f"{self.support:g}/{self.refute:g}, ev ≥ {self.min_evidence}, {self.confirm_cycles} cyc"

    def strictness(self) -> tuple[float, int, int]:
        return (self.support, self.min_evidence, self.confirm_cycles)


THRESHOLDS = ((0.9, 0.1), (0.95, 0.05), (0.975, 0.025), (0.99, 0.01))
GRID = tuple(
    Rule(s, r, m, c) for (s, r), m, c in itertools.product(THRESHOLDS, (1, 2, 3, 5), (1, 2, 3))
)  # fmt: skip


def default_rule() -> Rule:
    from planners.hypotheses.settings import HypothesisSettings

    d = HypothesisSettings()
    return Rule(d.support_threshold, d.refute_threshold, d.min_evidence, d.confirm_cycles)


# --- campaign files ----------------------------------------------------------------------------------------------


def spec_for(problem: str, seed: int, experiments: int, batch: int) -> tuple[str, Path]:
    """The campaign file of a problem with the recording settings, and the folder its relative paths start from."""
    if problem in REACTIONS:
        data = yaml.safe_load(spec_text(problem, seed, "model", experiments, batch))
        data["hypotheses"] = dict(RECORDING)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True), EXAMPLES
    return yaml.safe_dump(_olympus_spec(problem, seed, experiments, batch), sort_keys=False), TABLES


def _olympus_spec(problem: str, seed: int, experiments: int, batch: int) -> dict[str, Any]:
    from benchmarks.suite_problems import build_problems

    p = build_problems()[problem]
    frame = p.table  # replicate rows merged, as the planner suite sees the pool
    TABLES.mkdir(parents=True, exist_ok=True)
    path = TABLES / f"{problem}.csv"
    if not path.is_file():
        frame.to_csv(path, index=False, float_format="%.9g")
    objective = p.objectives[0]
    return {
        "name": problem,
        "goal": f"{objective.direction.capitalize()} {objective.name}: {p.title}.",
        # A lookup answers only the table's rows: each parameter is discrete on the values the table holds.
        "space": [
            {"name": n, "type": "discrete", "values": sorted(float(f"{v:.9g}") for v in frame[n].unique())}
            for n in p.names
        ],
        "objectives": [{"name": objective.name, "direction": objective.direction}],
        "budget": {"experiments": experiments, "batch_size": batch},
        "stop": {"target_reached": False},
        "planner": {"kind": "bayesian", "seed": seed},
        "hypotheses": dict(RECORDING),
        "lab": {"simulator": "lookup", "table": path.name, "outcomes": {objective.name: objective.name}},
        "approval": "none",
    }


# --- recording -----------------------------------------------------------------------------------------------------

_TRUTH: dict[str, tuple[list[dict[str, Any]], list[float], str]] = {}


def record(problem: str, seed: int, experiments: int, batch: int) -> dict[str, Any]:
    """One recording campaign, every claim of its ledger decided against the full table."""
    text, base = spec_for(problem, seed, experiments, batch)
    run = {"problem": problem, "seed": seed, **run_spec(text, base)}
    judge(run)
    return run


def judge(run: dict[str, Any]) -> None:
    """`true` for every claim that entered the ledger (None when the table cannot decide it), `truth` its detail."""
    from planners.hypotheses.claims import parse_claim

    problem = run["problem"]
    if problem not in _TRUTH:
        _TRUTH[problem] = spec_table(*spec_for(problem, 0, EXPERIMENTS, BATCH))
    points, values, direction = _TRUTH[problem]
    for h in run["hypotheses"]:
        h["true"], h["truth"] = None, None
        if h["status"] == "rejected":
            continue
        try:
            truth = claim_truth(parse_claim(h["claim"]), points, values, direction)
        except ValueError as exc:  # e.g. no table row at a level the claim compares
            h["truth"] = {"undecided": str(exc)}
            continue
        h["true"], h["truth"] = truth.holds, truth.detail


# --- replay --------------------------------------------------------------------------------------------------------


def settle(h: dict[str, Any], rule: Rule) -> str | None:
    """The status `rule` would have given the claim by the end of the recording (None: still open).

    `history` holds one (results, credence, evidence) row per cycle; the ledger's test reads the latest
    `confirm_cycles` credences and this cycle's evidence, so the same test is made here at every cycle in turn."""
    credences = [c for _, c, _ in h["history"]]
    for i, (_, _, evidence) in enumerate(h["history"]):
        if evidence < rule.min_evidence or i + 1 < rule.confirm_cycles:
            continue
        recent = credences[i + 1 - rule.confirm_cycles : i + 1]
        if all(c >= rule.support for c in recent):
            return "supported"
        if all(c <= rule.refute for c in recent):
            return "refuted"
    # The ledger settles a claim that a measured result demonstrates whatever its thresholds (and settling is off
    # while recording, so a claim recorded as supported was demonstrated).
    return "supported" if h["status"] == "supported" else None


@dataclass
class Score:
    experiments: int = 0
    settled: int = 0
    supported: int = 0
    supported_true: int = 0
    refuted: int = 0
    refuted_false: int = 0
    undecided: int = 0  # settled, but the table cannot decide the claim

    def add(self, other: Score) -> Score:
        return Score(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    @property
    def rate(self) -> float:
        """Claims settled per 50 experiments."""
        return 50 * self.settled / self.experiments if self.experiments else math.nan

    @property
    def right(self) -> int:
        return self.supported_true + self.refuted_false

    @property
    def decided(self) -> int:
        return self.supported + self.refuted

    @property
    def precision(self) -> float:
        return self.right / self.decided if self.decided else math.nan

    def meets(self, floor: float) -> bool:
        """Something settled, and both precisions (of those settled either way) at least `floor`."""
        shares = [(k, n) for k, n in ((self.supported_true, self.supported), (self.refuted_false, self.refuted)) if n]
        return bool(shares) and all(k / n >= floor for k, n in shares)


def pooled(scores: Sequence[Score]) -> Score:
    """The scores added up (counts over every problem given)."""
    total = Score()
    for s in scores:
        total = total.add(s)
    return total


def score(runs: Sequence[dict[str, Any]], rule: Rule) -> Score:
    per_run = []
    for run in runs:
        s = Score(experiments=run["experiments"])
        for h in run["hypotheses"]:
            if h["status"] == "rejected":
                continue
            status = settle(h, rule)
            if status is None:
                continue
            s.settled += 1
            if h["true"] is None:
                s.undecided += 1
            elif status == "supported":
                s.supported += 1
                s.supported_true += bool(h["true"])
            else:
                s.refuted += 1
                s.refuted_false += not h["true"]
        per_run.append(s)
    return pooled(per_run)


def mean_rate(scores: Sequence[Score]) -> float:
    """Mean over problems, so that each problem counts once whatever its number of seeds."""
    rates = [s.rate for s in scores]
    return sum(rates) / len(rates) if rates else math.nan


def choose(
    by_problem: dict[str, list[dict[str, Any]]], problems: Sequence[str], floor: float
) -> tuple[Rule, Score, float]:
    """The rule chosen on `problems`: most settled per 50 among those whose pooled precisions meet `floor`;
    when none does, the most precise. Returns the rule, its pooled score and its mean rate there."""
    candidates = []
    for rule in GRID:
        scores = [score(by_problem[p], rule) for p in problems]
        candidates.append((rule, pooled(scores), mean_rate(scores)))
    passing = [c for c in candidates if c[1].meets(floor)]
    if passing:
        return max(passing, key=lambda c: (c[2], c[0].strictness()))
    return max(candidates, key=lambda c: (0 if math.isnan(c[1].precision) else c[1].precision, c[0].strictness()))


# --- report --------------------------------------------------------------------------------------------------------


def _cell(s: Score) -> str:
    precision = "–" if not s.decided else f"{100 * s.precision:.0f} %"
    return f"{s.rate:.1f} · {precision} ({s.right}/{s.decided})"


def report(runs: Sequence[dict[str, Any]], problems: Sequence[str]) -> None:
    by_problem = {p: [r for r in runs if r["problem"] == p] for p in problems}
    default = default_rule()

    print("\n### Recording runs (settling off)\n")
    print("| problem | runs | experiments | claims | true | undecidable | demonstrated | wall s/run |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for p in problems:
        rs = by_problem[p]
        hs = [h for r in rs for h in r["hypotheses"] if h["status"] != "rejected"]
        print(
            f"| {p} | {len(rs)} | {sum(r['experiments'] for r in rs)} | {len(hs)} "
            f"| {sum(h['true'] is True for h in hs)} | {sum(h['true'] is None for h in hs)} "
            f"| {sum(h['status'] == 'supported' for h in hs)} "
            f"| {sum(r['wall_s'] for r in rs) / max(len(rs), 1):.0f} |"
        )

    print("\n### Every rule on every problem: settled per 50 experiments · precision of settled (right/settled)\n")
    print("Rule: support/refute threshold, min_evidence, confirm_cycles; ← the current default.\n")
    print("| rule | " + " | ".join(problems) + " | pooled |")
    print("|---|" + "---:|" * (len(problems) + 1))
    for rule in GRID:
        scores = [score(by_problem[p], rule) for p in problems]
        mark = " ←" if rule == default else ""
        print(f"| {rule.name()}{mark} | " + " | ".join(_cell(s) for s in scores) + f" | {_cell(pooled(scores))} |")

    for floor in FLOORS:
        _leave_one_out(by_problem, problems, floor, default)


def _leave_one_out(
    by_problem: dict[str, list[dict[str, Any]]], problems: Sequence[str], floor: float, default: Rule
) -> None:
    print(f"\n### Leave-one-problem-out, precision floor {floor:g}\n")
    print(
        f"Chosen on the other problems: most settled per 50 experiments (mean over them) with pooled precision of "
        f"`supported` and of `refuted` each ≥ {floor:g} there. Held-out cells: settled per 50; supported that are "
        "true; refuted that are false (95 % Wilson interval).\n"
    )
    print(
        "| held out | rule chosen on the others | there: per 50 · precision | held out: per 50 | supported true "
        "| refuted false | default on held out: per 50 | supported true | refuted false |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    pooled_chosen, pooled_default = Score(), Score()
    for held in problems:
        others = [p for p in problems if p != held]
        rule, there, there_rate = choose(by_problem, others, floor)
        mine, base = score(by_problem[held], rule), score(by_problem[held], default)
        pooled_chosen, pooled_default = pooled_chosen.add(mine), pooled_default.add(base)
        precision = "–" if not there.decided else f"{100 * there.precision:.0f} %"
        print(
            f"| {held} | {rule.name()} | {there_rate:.1f} · {precision} ({there.right}/{there.decided}) "
            f"| {mine.rate:.1f} | {share(mine.supported_true, mine.supported)} "
            f"| {share(mine.refuted_false, mine.refuted)} | {base.rate:.1f} "
            f"| {share(base.supported_true, base.supported)} | {share(base.refuted_false, base.refuted)} |"
        )
    print(
        f"| **all held out** | | | {pooled_chosen.rate:.1f} "
        f"| {share(pooled_chosen.supported_true, pooled_chosen.supported)} "
        f"| {share(pooled_chosen.refuted_false, pooled_chosen.refuted)} | {pooled_default.rate:.1f} "
        f"| {share(pooled_default.supported_true, pooled_default.supported)} "
        f"| {share(pooled_default.refuted_false, pooled_default.refuted)} |"
    )


# --- main ----------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    parser.add_argument("--seeds", type=int, default=2, help="Seeds 0..N-1.")
    parser.add_argument("--experiments", type=int, default=EXPERIMENTS)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--reuse", action="store_true", help="Skip runs already in the output JSON.")
    args = parser.parse_args()
    _one_thread()

    # seed by seed, so that a run cut short leaves every problem with the same seeds
    wanted = [(p, s) for s in range(args.seeds) for p in args.problems]

    def summary(run: dict[str, Any]) -> str:
        claims = sum(h["status"] != "rejected" for h in run["hypotheses"])
        return f"{run['wall_s']:.0f} s, {run['experiments']} experiments, {claims} claims"

    index = run_missing(
        args.out,
        wanted,
        lambda r: (r["problem"], r["seed"]),
        lambda key: record(*key, args.experiments, args.batch),
        summary,
        args.experiments,
        args.reuse,
    )
    report([index[k] for k in wanted if k in index], args.problems)


if __name__ == "__main__":
    main()
