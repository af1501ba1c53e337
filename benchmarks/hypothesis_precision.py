"""Are the hypotheses a campaign settles right, and what do they cost the optimisation?

For each data set (direct arylation, 1,728 reactions; Buchwald–Hartwig, 3,955) and seed, a campaign of 50
experiments in batches of 5 runs twice through the inline engine on a temporary SQLite database, from the example
file with budget, batch size, planner seed and hypothesis source overridden: (a) `hypotheses: model` (claims read
off the surrogate, part of each batch chosen to test them) and (b) plain Bayesian optimisation
(`hypotheses: none`), same planner seed.

After each (a) run every hypothesis in the ledger is decided against the full data table (`benchmarks/claim_truth.py`:
contrasts and effects by the paired main effect over the table, regions by where the table's best row lies,
attainability by the table's extreme). Reported, per data set and pooled: hypotheses proposed and how they ended;
precision of `supported` (share true) and of `refuted` (share false), with counts and a 95 % Wilson interval;
hypotheses settled per 50 experiments; best yield after 50 experiments with and without hypotheses; wall time per
run. Every settled hypothesis that is wrong is listed with its credence, evidence and the true table quantities.
Prints markdown; asserts nothing. Raw per-run records go to `benchmarks/out/hypothesis_precision.json`.

    .venv/bin/python benchmarks/hypothesis_precision.py --datasets direct_arylation aryl_amination --seeds 3 [--reuse]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.claim_truth import claim_truth  # noqa: E402
from benchmarks.closed_loop import EXAMPLES, _one_thread, best_so_far  # noqa: E402

DATASETS = ("direct_arylation", "aryl_amination")
ARMS = ("hypotheses", "plain")
OUT = REPO / "benchmarks" / "out" / "hypothesis_precision.json"
EXPERIMENTS, BATCH = 50, 5


# --- one run ---------------------------------------------------------------------------------------------------


def spec_text(dataset: str, seed: int, source: str, experiments: int, batch: int) -> str:
    """The example campaign file with budget, batch, planner seed and hypothesis source overridden."""
    data = yaml.safe_load((EXAMPLES / f"{dataset}.yaml").read_text(encoding="utf-8"))
    data["budget"] = {"experiments": experiments, "batch_size": batch}
    data["planner"] = {**data.get("planner", {}), "seed": seed}
    hypotheses = data.get("hypotheses")
    data["hypotheses"] = {**hypotheses, "source": source} if isinstance(hypotheses, dict) else source
    data["stop"] = {**(data.get("stop") or {}), "target_reached": False}  # always spend the whole budget
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def run_campaign(dataset: str, seed: int, arm: str, experiments: int, batch: int) -> dict[str, Any]:
    """One campaign through the inline engine on a fresh SQLite file; returns its trace and ledger."""
    text = spec_text(dataset, seed, "model" if arm == "hypotheses" else "none", experiments, batch)
    return {"dataset": dataset, "seed": seed, "arm": arm, **run_spec(text)}


def run_spec(text: str, base: Path = EXAMPLES) -> dict[str, Any]:
    """A campaign file's text (relative paths from `base`) run through the inline engine on a fresh SQLite file:
    its results, stop reason, wall time and every hypothesis of its ledger with the credence history."""
    from sqlalchemy import select

    from orchestrator.campaign import runs
    from orchestrator.campaign.spec import parse_spec
    from orchestrator.cycle.context import load_context, open_campaign
    from orchestrator.cycle.loop import InlineStages, run_loop
    from orchestrator.store.database import open_database
    from orchestrator.store.models import Decision, Experiment, Hypothesis, HypothesisCredence

    spec = parse_spec(text, base)
    objective = spec.objectives[0].name
    with tempfile.TemporaryDirectory(prefix="peirce-hyp-") as folder:
        started = time.perf_counter()
        db = open_database(f"sqlite:///{Path(folder) / 'run.db'}")
        campaign_id, _ = open_campaign(db, spec, text)
        runs.claim(db, campaign_id)
        ctx = load_context(db, campaign_id)
        reason = run_loop(ctx, InlineStages(ctx))
        wall = time.perf_counter() - started
        with db.session() as session:
            rows = session.scalars(
                select(Experiment).where(Experiment.campaign_id == campaign_id).order_by(Experiment.seq)
            ).all()
            values = [
                next((m.value for m in reversed(e.measurements) if m.name == objective), math.nan)
                for e in rows
                if e.state == "completed"
            ]
            planner_s = {
                stage: float(sum(d.wall_time_s for d in session.scalars(select(Decision)).all() if d.stage == stage))
                for stage in ("abduce", "deduce")
            }
            hypotheses = []
            for h in session.scalars(
                select(Hypothesis).where(Hypothesis.campaign_id == campaign_id).order_by(Hypothesis.id)
            ).all():
                history = session.scalars(
                    select(HypothesisCredence)
                    .where(HypothesisCredence.hypothesis_id == h.id)
                    .order_by(HypothesisCredence.id)
                ).all()
                hypotheses.append(
                    {
                        "id": h.id,
                        "kind": h.kind,
                        "statement": h.statement,
                        "claim": h.claim,
                        "source": h.source,
                        "status": h.status,
                        "credence": h.credence,
                        "evidence": h.evidence,
                        "reason": h.reason,
                        "rationale": h.rationale,
                        "predicted": h.predicted,
                        "history": [[c.observations, c.credence, c.evidence] for c in history],
                    }
                )
    return {
        "experiments": len(values),
        "stop_reason": reason,
        "wall_s": wall,
        "planner_s": planner_s,
        "values": values,
        "best": float(best_so_far(values, spec.objectives[0].direction == "maximize")[-1]),
        "hypotheses": hypotheses,
    }


# --- truth -------------------------------------------------------------------------------------------------------

_TABLES: dict[str, tuple[list[dict[str, Any]], list[float], str]] = {}


def table(dataset: str) -> tuple[list[dict[str, Any]], list[float], str]:
    """Every point of the data set's table (as the campaign names them), its objective value, and the direction."""
    if dataset not in _TABLES:
        _TABLES[dataset] = spec_table(spec_text(dataset, 0, "none", EXPERIMENTS, BATCH))
    return _TABLES[dataset]


def spec_table(text: str, base: Path = EXAMPLES) -> tuple[list[dict[str, Any]], list[float], str]:
    """Every candidate of a lookup campaign file (as the campaign names them), its first objective's value in the
    table, and that objective's direction."""
    from orchestrator.campaign.spec import parse_spec
    from orchestrator.lab.build import build_lab

    spec = parse_spec(text, base)
    lab = build_lab(spec)
    objective = spec.objectives[0]
    points = list(lab.candidates or [])
    values = [float(lab.run(p, "truth").values[objective.name]) for p in points]
    return points, values, objective.direction


def judge(run: dict[str, Any]) -> None:
    """Add `true` and `truth` (the table's quantities) to every hypothesis of a run that is a claim."""
    from planners.hypotheses.claims import parse_claim

    points, values, direction = table(run["dataset"])
    for h in run["hypotheses"]:
        if h["status"] == "rejected":
            h["true"], h["truth"] = None, None
            continue
        truth = claim_truth(parse_claim(h["claim"]), points, values, direction)
        h["true"], h["truth"] = truth.holds, truth.detail


# --- report ------------------------------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def share(k: int, n: int) -> str:
    if n == 0:
        return "– (0/0)"
    low, high = wilson(k, n)
    return f"{100 * k / n:.0f} % ({k}/{n}; {100 * low:.0f}–{100 * high:.0f})"


def _mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return float(np.mean(xs)) if xs else math.nan


def report(runs: Sequence[dict[str, Any]], datasets: Sequence[str]) -> None:
    groups = [(d, [r for r in runs if r["dataset"] == d]) for d in datasets]
    if len(datasets) > 1:
        groups.append(("pooled", list(runs)))

    print("\n### Ledger outcome (hypotheses arm)\n")
    print("| data set | runs | proposed | rejected | supported | refuted | open | retired | settled per 50 exp. |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, group in groups:
        mine = [r for r in group if r["arm"] == "hypotheses"]
        hs = [h for r in mine for h in r["hypotheses"]]
        count = {s: sum(h["status"] == s for h in hs) for s in ("rejected", "supported", "refuted", "open", "retired")}
        settled = _mean(
            50 * sum(h["status"] in ("supported", "refuted") for h in r["hypotheses"]) / max(r["experiments"], 1)
            for r in mine
        )
        print(
            f"| {name} | {len(mine)} | {len(hs)} | {count['rejected']} | {count['supported']} | {count['refuted']} "
            f"| {count['open']} | {count['retired']} | {settled:.1f} |"
        )

    print("\n### Precision of settled hypotheses (share right, k/n, 95 % Wilson interval)\n")
    print("| data set | supported that are true | refuted that are false | all settled right | open: true |")
    print("|---|---:|---:|---:|---:|")
    for name, group in groups:
        hs = [h for r in group if r["arm"] == "hypotheses" for h in r["hypotheses"] if h["status"] != "rejected"]
        sup = [h for h in hs if h["status"] == "supported"]
        ref = [h for h in hs if h["status"] == "refuted"]
        opn = [h for h in hs if h["status"] == "open"]
        k_sup, k_ref = sum(h["true"] for h in sup), sum(not h["true"] for h in ref)
        print(
            f"| {name} | {share(k_sup, len(sup))} | {share(k_ref, len(ref))} "
            f"| {share(k_sup + k_ref, len(sup) + len(ref))} | {share(sum(h['true'] for h in opn), len(opn))} |"
        )

    print("\n### Precision by kind of claim (all data sets)\n")
    print("| kind | proposed | supported that are true | refuted that are false |")
    print("|---|---:|---:|---:|")
    everything = [h for r in runs if r["arm"] == "hypotheses" for h in r["hypotheses"] if h["status"] != "rejected"]
    for kind in ("contrast", "effect", "region", "attainability"):
        hs = [h for h in everything if h["kind"] == kind]
        sup = [h for h in hs if h["status"] == "supported"]
        ref = [h for h in hs if h["status"] == "refuted"]
        print(
            f"| {kind} | {len(hs)} | {share(sum(h['true'] for h in sup), len(sup))} "
            f"| {share(sum(not h['true'] for h in ref), len(ref))} |"
        )

    print("\n### Cost to the optimisation: best yield after 50 experiments (mean over seeds)\n")
    print("| data set | seeds | with hypotheses | plain BO | difference (paired, ± sd) | wall s/run hyp. | plain |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, group in groups:
        by = {(r["dataset"], r["seed"], r["arm"]): r for r in group}
        paired = sorted({(d, s) for d, s, _ in by if all((d, s, a) in by for a in ARMS)})
        hyp = [by[(d, s, "hypotheses")]["best"] for d, s in paired]
        plain = [by[(d, s, "plain")]["best"] for d, s in paired]
        diff = np.array(hyp) - np.array(plain)
        sd = float(diff.std(ddof=1)) if len(diff) > 1 else math.nan
        wall_h = _mean(r["wall_s"] for r in group if r["arm"] == "hypotheses")
        wall_p = _mean(r["wall_s"] for r in group if r["arm"] == "plain")
        print(
            f"| {name} | {len(paired)} | {_mean(hyp):.2f} | {_mean(plain):.2f} | {_mean(diff):+.2f} ± {sd:.2f} "
            f"| {wall_h:.0f} | {wall_p:.0f} |"
        )

    print("\n### Best so far after n experiments (mean over seeds)\n")
    marks = [5, 10, 15, 20, 30, 40, 50]
    print("| data set | arm | " + " | ".join(str(m) for m in marks) + " |")
    print("|---|---|" + "---:|" * len(marks))
    for dataset in datasets:
        for arm in ARMS:
            chosen = [r for r in runs if r["dataset"] == dataset and r["arm"] == arm]
            if not chosen:
                continue
            curves = [np.maximum.accumulate(r["values"]) for r in chosen]
            means = [_mean(float(c[min(m, len(c)) - 1]) for c in curves) for m in marks]
            print(f"| {dataset} | {arm} | " + " | ".join(f"{v:.1f}" for v in means) + " |")

    print("\n### Per run\n")
    print(
        "| data set | seed | best hyp. | best plain | supported | refuted | open | wrong settled | wall s hyp./plain |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    by = {(r["dataset"], r["seed"], r["arm"]): r for r in runs}
    for d, s in sorted({(r["dataset"], r["seed"]) for r in runs}):
        h, p = by.get((d, s, "hypotheses")), by.get((d, s, "plain"))
        hs = h["hypotheses"] if h else []
        count = {st: sum(x["status"] == st for x in hs) for st in ("supported", "refuted", "open")}
        wrong = sum(_wrong(x) for x in hs)
        print(
            f"| {d} | {s} | {h['best'] if h else math.nan:.2f} | {p['best'] if p else math.nan:.2f} "
            f"| {count['supported']} | {count['refuted']} | {count['open']} | {wrong} "
            f"| {h['wall_s'] if h else math.nan:.0f} / {p['wall_s'] if p else math.nan:.0f} |"
        )

    print("\n### Settled hypotheses that are wrong\n")
    wrong = [(r, h) for r in runs if r["arm"] == "hypotheses" for h in r["hypotheses"] if _wrong(h)]
    if not wrong:
        print("none")
    for r, h in wrong:
        settled_after = h["history"][-1][0] if h["history"] else None
        print(
            f"- {r['dataset']} seed {r['seed']} #{h['id']} **{h['status']}** (credence {h['credence']:.3f}, "
            f"evidence {h['evidence']}, settled after {settled_after} results): {h['statement']}\n"
            f"  - model said: {_predicted(h)}; table: {_truth_words(h)}\n"
            f"  - credence history (results, credence, evidence): "
            + ", ".join(f"({n}, {c:.2f}, {e})" for n, c, e in h["history"])
        )


def _wrong(h: dict[str, Any]) -> bool:
    return (h["status"] == "supported" and h["true"] is False) or (h["status"] == "refuted" and h["true"] is True)


def _predicted(h: dict[str, Any]) -> str:
    p = h.get("predicted") or {}
    if not p:
        return "–"
    return f"{p.get('quantity')} = {p.get('mean', math.nan):.3g} ± {p.get('std', math.nan):.2g}"


def _truth_words(h: dict[str, Any]) -> str:
    t = h["truth"] or {}
    if h["kind"] == "contrast":
        return (
            f"mean {t['mean_better']:.2f} (better) vs {t['mean_worse']:.2f} (worse), difference "
            f"{t['difference']:+.2f} over {t['pairs']} pairs, better wins {100 * t['wins']:.0f} % of pairs"
        )
    if h["kind"] == "effect":
        return (
            f"mean {t['mean_to']:.2f} (to) vs {t['mean_from']:.2f} (from), difference {t['difference']:+.2f} "
            f"over {t['pairs']} pairs, 'to' higher in {100 * t['wins']:.0f} % of pairs"
        )
    if h["kind"] == "region":
        return (
            f"table best {t['best']:.2f} at {t['best_points'][:2]} ({t['ties']} tied); best inside the region "
            f"{t['best_inside']:.2f} over {t['rows_inside']} rows"
        )
    return f"table extreme {t['extreme']:.2f} vs stated {t['value']:g}"


# --- resumable runs ---------------------------------------------------------------------------------------------


def run_missing(
    out: Path,
    wanted: Sequence[tuple[Any, ...]],
    key: Callable[[dict[str, Any]], tuple[Any, ...]],
    run: Callable[[tuple[Any, ...]], dict[str, Any]],
    summary: Callable[[dict[str, Any]], str],
    experiments: int,
    reuse: bool,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Run each of `wanted` (keys: name, seed, then anything else) with `run(key)`, keeping every run in `out` as
    soon as it ends, so that a benchmark cut short loses one run; with `reuse`, a key already stored with the same
    number of experiments is not run again. Returns every stored run by key (`key(run)`)."""
    stored: list[dict[str, Any]] = json.loads(out.read_text())["runs"] if out.is_file() else []
    index = {key(r): r for r in stored}
    out.parent.mkdir(parents=True, exist_ok=True)
    for k in wanted:
        if reuse and k in index and index[k]["experiments"] == experiments:
            continue
        print(f"{k[0]} seed {k[1]}{''.join(f' {x}' for x in k[2:])} ...", file=sys.stderr, flush=True)
        index[k] = run(k)
        print(f"  {summary(index[k])}", file=sys.stderr, flush=True)
        out.write_text(json.dumps({"runs": list(index.values())}, indent=1, default=str))
    return index


# --- main --------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--seeds", type=int, default=3, help="Seeds 0..N-1.")
    parser.add_argument("--experiments", type=int, default=EXPERIMENTS)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--reuse", action="store_true", help="Skip runs already in the output JSON.")
    args = parser.parse_args()
    _one_thread()

    wanted = [(d, s, a) for d in args.datasets for s in range(args.seeds) for a in ARMS]

    def one(key: tuple[Any, ...]) -> dict[str, Any]:
        run = run_campaign(*key, args.experiments, args.batch)
        judge(run)
        return run

    def summary(run: dict[str, Any]) -> str:
        statuses = ("supported", "refuted", "open", "rejected")
        counts = ", ".join(f"{st} {sum(h['status'] == st for h in run['hypotheses'])}" for st in statuses)
        return f"{run['wall_s']:.0f} s, best {run['best']:.2f}, {counts}"

    index = run_missing(
        args.out, wanted, lambda r: (r["dataset"], r["seed"], r["arm"]), one, summary, args.experiments, args.reuse
    )
    for r in index.values():
        if r["arm"] == "hypotheses" and any("true" not in h for h in r["hypotheses"]):
            judge(r)
    report([index[k] for k in wanted if k in index], args.datasets)


if __name__ == "__main__":
    main()
