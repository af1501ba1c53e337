"""BayBE peer runner — run with .peers/baybe/bin/python (see README.md).

Subcommands: direct_arylation, aryl_amination, hartmann6, latency, suite.
Each writes one JSON file (--out); progress lines go to stderr.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc

PEER = "baybe"
SUBSTANCES_DA = ["Solvent", "Base", "Ligand"]
SUBSTANCES_AA = ["Aryl_halide", "Additive", "Base", "Ligand"]
ENCODING = os.environ.get("PEIRCE_BAYBE_ENCODING", "MORDRED")


def _imports(threads: int) -> None:
    pc.set_torch_threads(threads)
    warnings.filterwarnings("ignore")  # BayBE/BoTorch deprecation & numerical warnings


def _version() -> str:
    import baybe

    return baybe.__version__


def _seed(seed: int) -> None:
    """Seed python/numpy/torch and BayBE's own settings-managed random state."""
    from baybe import active_settings

    pc.seed_everything(seed)
    active_settings.random_seed = seed


def _recommender_config(campaign) -> dict:
    r = campaign.recommender
    cfg: dict = {"recommender": type(r).__name__}
    if hasattr(r, "initial_recommender"):
        cfg["initial_recommender"] = type(r.initial_recommender).__name__
        cfg["switch_after"] = r.switch_after
        bot = r.recommender
    else:
        bot = r
    cfg["bayesian_recommender"] = type(bot).__name__
    sur = getattr(bot, "_surrogate_model", None)
    cfg["surrogate"] = type(sur).__name__ if sur is not None else None
    kf = getattr(sur, "kernel_factory", None)
    cfg["kernel_factory"] = type(kf).__name__ if kf is not None else None
    acqf = getattr(bot, "acquisition_function", None)
    cfg["acquisition_function"] = repr(acqf) if acqf is not None else "default (qLogEI, single target)"
    for attr in ("sequential_continuous", "n_restarts", "n_raw_samples"):
        if hasattr(bot, attr):
            cfg[attr] = getattr(bot, attr)
    cfg["allow_recommending_already_measured"] = campaign.allow_recommending_already_measured
    cfg["allow_recommending_already_recommended"] = campaign.allow_recommending_already_recommended
    return cfg


# --------------------------------------------------------------------------- lookup tables
def _closed_loop_table(campaign, lookup: dict, key_cols: list[str], n_exp: int, q: int, target: str) -> dict:
    trace: list[float] = []
    seen: set = set()
    repeats = 0
    rec_times = []
    while len(trace) < n_exp:
        bs = min(q, n_exp - len(trace))
        t0 = time.perf_counter()
        rec = campaign.recommend(batch_size=bs)
        rec_times.append(time.perf_counter() - t0)
        ys = []
        for _, row in rec.iterrows():
            key = tuple(_norm(row[c]) for c in key_cols)
            if key in seen:
                repeats += 1
            seen.add(key)
            ys.append(float(lookup[key]))
        rec = rec.copy()
        rec[target] = ys
        campaign.add_measurements(rec)
        trace.extend(ys)
    return {"trace": trace, "repeats": repeats, "recommend_s": [round(t, 3) for t in rec_times]}


def _norm(v):
    if isinstance(v, str):
        return v
    return round(float(v), 6)


def cmd_direct_arylation(args) -> None:
    import pandas as pd
    from baybe import Campaign
    from baybe.parameters import NumericalDiscreteParameter, SubstanceParameter
    from baybe.searchspace import SearchSpace
    from baybe.targets import NumericalTarget

    data = pd.read_csv(pc.DIRECT_ARYLATION_CSV)
    params = [
        SubstanceParameter(name=s, data=dict(zip(data[s], data[f"{s}_SMILES"], strict=True)), encoding=ENCODING)
        for s in SUBSTANCES_DA
    ] + [
        NumericalDiscreteParameter(name="Concentration", values=sorted(data["Concentration"].unique())),
        NumericalDiscreteParameter(name="Temp_C", values=sorted(float(t) for t in data["Temp_C"].unique())),
    ]
    t0 = time.perf_counter()
    searchspace = SearchSpace.from_product(parameters=params)
    ss_s = time.perf_counter() - t0
    objective = NumericalTarget(name="yield").to_objective()  # maximise
    key_cols = [*SUBSTANCES_DA, "Concentration", "Temp_C"]
    lookup = {tuple(_norm(r[c]) for c in key_cols): r["yield"] for _, r in data.iterrows()}
    assert len(lookup) == len(data) == len(searchspace.discrete.exp_rep)

    def make():
        return Campaign(searchspace=searchspace, objective=objective, allow_recommending_already_measured=False)

    config = {
        "problem": "direct_arylation (Shields et al. 2021), 1728 candidates, maximise yield",
        "searchspace": "SearchSpace.from_product: SubstanceParameter(Solvent, Base, Ligand; "
        f"encoding={ENCODING}) + NumericalDiscreteParameter(Concentration, Temp_C)",
        "encoding": ENCODING,
        "encoded_columns": int(searchspace.discrete.comp_rep.shape[1]),
        "objective": "SingleTargetObjective(NumericalTarget('yield')) (maximise)",
        "searchspace_build_s": round(ss_s, 2),
        "reference": "mirrors baybe benchmarks/domains/direct_arylation (Mordred scenario), "
        "but batch_size/experiments as requested and no re-measurement of candidates",
        **_recommender_config(make()),
    }
    result = pc.base_result(PEER, _version(), "direct_arylation", args, config)

    def one(seed: int) -> dict:
        _seed(seed)
        return _closed_loop_table(make(), lookup, key_cols, args.experiments, args.batch_size, "yield")

    pc.run_seeds(result, args.out, pc.parse_seeds(args.seeds), one, "direct_arylation")


def cmd_aryl_amination(args) -> None:
    import pandas as pd
    from baybe import Campaign
    from baybe.parameters import SubstanceParameter
    from baybe.searchspace import SearchSpace
    from baybe.targets import NumericalTarget

    data = pd.read_csv(pc.ARYL_AMINATION_CSV)
    for s in SUBSTANCES_AA:
        data[s] = data[f"{s}_SMILES"]
    params = [
        SubstanceParameter(name=s, data={smi: smi for smi in sorted(data[s].unique())}, encoding=ENCODING)
        for s in SUBSTANCES_AA
    ]
    t0 = time.perf_counter()
    # only the rows that exist in the table are candidates
    searchspace = SearchSpace.from_dataframe(data[SUBSTANCES_AA].copy(), parameters=params)
    ss_s = time.perf_counter() - t0
    objective = NumericalTarget(name="yield").to_objective()
    lookup = {tuple(r[c] for c in SUBSTANCES_AA): r["yield"] for _, r in data.iterrows()}
    assert len(lookup) == len(data) == len(searchspace.discrete.exp_rep)

    def make():
        return Campaign(searchspace=searchspace, objective=objective, allow_recommending_already_measured=False)

    config = {
        "problem": "aryl_amination (Buchwald-Hartwig, Ahneman et al. 2018), 3955 existing rows, maximise yield",
        "searchspace": "SearchSpace.from_dataframe(existing rows): SubstanceParameter(Aryl_halide, Additive, "
        f"Base, Ligand; encoding={ENCODING})",
        "encoding": ENCODING,
        "encoded_columns": int(searchspace.discrete.comp_rep.shape[1]),
        "objective": "SingleTargetObjective(NumericalTarget('yield')) (maximise)",
        "searchspace_build_s": round(ss_s, 2),
        "reference": "substance encoding as in baybe benchmarks/domains/aryl_halides (MORDRED)",
        **_recommender_config(make()),
    }
    result = pc.base_result(PEER, _version(), "aryl_amination", args, config)

    def one(seed: int) -> dict:
        _seed(seed)
        return _closed_loop_table(make(), lookup, SUBSTANCES_AA, args.experiments, args.batch_size, "yield")

    pc.run_seeds(result, args.out, pc.parse_seeds(args.seeds), one, "aryl_amination")


# --------------------------------------------------------------------------- Hartmann-6
XCOLS = [f"x{i}" for i in range(1, 7)]


def _hartmann_space():
    from baybe.parameters import NumericalContinuousParameter
    from baybe.searchspace import SearchSpace
    from baybe.targets import NumericalTarget

    ss = SearchSpace.from_product(parameters=[NumericalContinuousParameter(c, (0.0, 1.0)) for c in XCOLS])
    return ss, NumericalTarget(name="f", minimize=True).to_objective()


def cmd_hartmann6(args) -> None:
    from baybe import Campaign

    searchspace, objective = _hartmann_space()

    def make():
        return Campaign(searchspace=searchspace, objective=objective)

    config = {
        "problem": "Hartmann-6 on [0,1]^6, minimise, noiseless",
        "searchspace": "6 x NumericalContinuousParameter(0,1)",
        "objective": "NumericalTarget('f', minimize=True)",
        "reference": "as baybe benchmarks/domains/hartmann/hartmann_6d.py 'Default Recommender' "
        "(batch 5, 30 iterations)",
        **_recommender_config(make()),
    }
    result = pc.base_result(PEER, _version(), "hartmann6", args, config)

    def one(seed: int) -> dict:
        _seed(seed)
        camp = make()
        trace: list[float] = []
        rec_times = []
        for _ in range(args.batches):
            t0 = time.perf_counter()
            rec = camp.recommend(batch_size=args.batch_size)
            rec_times.append(time.perf_counter() - t0)
            f = pc.hartmann6(rec[XCOLS].to_numpy(dtype=float))
            rec = rec.copy()
            rec["f"] = f
            camp.add_measurements(rec)
            trace.extend(float(v) for v in f)
        return {"trace": trace, "recommend_s": [round(t, 3) for t in rec_times]}

    pc.run_seeds(result, args.out, pc.parse_seeds(args.seeds), one, "hartmann6")


# --------------------------------------------------------------------------- planner suite
def _suite_prepare(problem) -> tuple[dict, object]:
    """BayBE on one suite problem. Pools: `SearchSpace.from_dataframe(candidates)` (numeric columns as
    NumericalDiscreteParameter over the column's values, molecules as SubstanceParameter with ENCODING, categories
    as CategoricalParameter), never re-recommending a measured row. Functions: NumericalContinuousParameter per
    input. One objective: NumericalTarget (minimize where the problem minimises); several: ParetoObjective.
    BayBE has no black-box constraints: an infeasible experiment is added with the worst objective value seen so
    far among feasible ones (the problem's worst value before any), the usual penalty."""
    import pandas as pd
    from baybe import Campaign
    from baybe.objectives import ParetoObjective
    from baybe.parameters import (
        CategoricalParameter,
        NumericalContinuousParameter,
        NumericalDiscreteParameter,
        SubstanceParameter,
    )
    from baybe.searchspace import SearchSpace
    from baybe.targets import NumericalTarget

    names = problem.names
    if problem.kind == "pool":
        frame = pd.DataFrame(problem.candidates())[names]
        params = []
        for p in problem.parameters:
            if p.kind == "molecule":
                params.append(SubstanceParameter(name=p.name, data=dict(p.smiles), encoding=ENCODING))
            elif p.kind == "categorical":
                params.append(CategoricalParameter(name=p.name, values=[str(v) for v in p.values]))
            else:
                params.append(
                    NumericalDiscreteParameter(name=p.name, values=sorted(frame[p.name].astype(float).unique()))
                )
        searchspace = SearchSpace.from_dataframe(frame, parameters=params)
    else:
        searchspace = SearchSpace.from_product(
            parameters=[NumericalContinuousParameter(p.name, tuple(p.bounds)) for p in problem.parameters]
        )
    targets = [NumericalTarget(name=o.name, minimize=o.direction == "minimize") for o in problem.objectives]
    objective = ParetoObjective(targets) if len(targets) > 1 else targets[0].to_objective()

    def make():
        return Campaign(
            searchspace=searchspace, objective=objective, allow_recommending_already_measured=problem.kind != "pool"
        )

    config = {
        "searchspace": "from_dataframe(candidates)" if problem.kind == "pool" else "continuous box",
        "encoding": ENCODING,
        "objective": type(objective).__name__,
        "infeasible": "penalty: worst feasible objective value so far" if problem.constraints else None,
        "predictions": "Campaign.posterior_stats(recommended rows) right after recommend (not timed)",
        **_recommender_config(make()),
    }

    def one(seed: int, budget: int) -> dict:
        _seed(seed)
        campaign = make()
        experiments: list[dict] = []
        decision_s: list[float] = []
        predict_s: list[float] = []
        while len(experiments) < budget:
            q = min(problem.batch_size, budget - len(experiments))
            t0 = time.perf_counter()
            rec = campaign.recommend(batch_size=q)
            decision_s.append(round(time.perf_counter() - t0, 4))
            preds = [None] * len(rec)
            if campaign.measurements is not None and len(campaign.measurements):
                t0 = time.perf_counter()
                try:
                    with pc.rng_preserved():
                        stats = campaign.posterior_stats(rec[names])
                    preds = [
                        {
                            o.name: [float(row[f"{o.name}_mean"]), float(row[f"{o.name}_std"])]
                            for o in problem.objectives
                        }
                        for _, row in stats.iterrows()
                    ]
                except Exception as exc:  # predictions are a bonus: never let them stop the run
                    config.setdefault("prediction_errors", []).append(repr(exc)[:200])
                predict_s.append(round(time.perf_counter() - t0, 4))
            measured = rec[names].copy()
            for o in problem.objectives:
                measured[o.name] = 0.0
            for i, (_, row) in enumerate(rec.iterrows()):
                point = {n: pc.plain(row[n]) for n in names}
                outcome = problem.evaluate(point, seed, len(experiments))
                for o in problem.objectives:
                    if outcome["feasible"]:
                        value = outcome["observed"][o.name]
                    else:
                        seen = [e["observed"][o.name] for e in experiments if e["feasible"]]
                        worst = (max if o.direction == "minimize" else min)(seen) if seen else problem.worst
                        value = worst
                    measured.iloc[i, measured.columns.get_loc(o.name)] = value
                experiments.append({"x": point, "pred": preds[i], **outcome})
            campaign.add_measurements(measured)
        return {"experiments": experiments, "decision_s": decision_s, "predict_s": predict_s}

    return config, one


def cmd_suite(args) -> None:
    result = pc.base_result(PEER, _version(), "suite", args, {})
    pc.run_suite(result, args, _suite_prepare)


# --------------------------------------------------------------------------- latency
def cmd_latency(args) -> None:
    from baybe.recommenders import BotorchRecommender

    r = BotorchRecommender()
    config = {
        "problem": "Hartmann-6; n uniform points rng=np.random.default_rng(seed+n), then ONE timed call",
        "timed_call": "Campaign(recommender=BotorchRecommender()).recommend(batch_size=b) after add_measurements "
        "(includes GP fit + acquisition optimisation; no random initial phase)",
        "recommender": "BotorchRecommender",
        "surrogate": type(r._surrogate_model).__name__,
        "acquisition_function": "default (qLogEI for single target)",
        "sequential_continuous": r.sequential_continuous,
        "n_restarts": r.n_restarts,
        "n_raw_samples": r.n_raw_samples,
        "process": "each (n, b, repeat) in a fresh subprocess; one untimed warm-up recommend on 8 points first",
    }
    result = pc.base_result(PEER, _version(), "latency", args, config)
    pc.run_latency(result, args, os.path.abspath(__file__))


def cmd_latency_one(args) -> None:
    import numpy as np
    import pandas as pd
    from baybe import Campaign
    from baybe.recommenders import BotorchRecommender

    searchspace, objective = _hartmann_space()

    def campaign_with(X, y):
        camp = Campaign(searchspace=searchspace, objective=objective, recommender=BotorchRecommender())
        df = pd.DataFrame(X, columns=XCOLS)
        df["f"] = y
        camp.add_measurements(df)
        return camp

    # untimed warm-up (lazy imports, torch kernels) on a tiny problem
    _seed(12345)
    Xw = np.random.default_rng(12345).random((8, 6))
    campaign_with(Xw, pc.hartmann6(Xw)).recommend(batch_size=1)

    X, y = pc.latency_points(args.n, args.seed)
    _seed(args.seed)
    camp = campaign_with(X, y)
    t0 = time.perf_counter()
    rec = camp.recommend(batch_size=args.b)
    secs = time.perf_counter() - t0
    vals = pc.hartmann6(rec[XCOLS].to_numpy(dtype=float))
    pc.write_json(
        args.out,
        {
            "seconds": secs,
            "best_value": float(vals.min()),
            "n_returned": len(rec),
            "recommender_used": type(camp.recommender).__name__,
        },
    )


def main(argv=None) -> None:
    args = pc.build_parser(PEER).parse_args(argv)
    pc.set_thread_env(args.threads)
    _imports(args.threads)
    {
        "direct_arylation": cmd_direct_arylation,
        "aryl_amination": cmd_aryl_amination,
        "hartmann6": cmd_hartmann6,
        "latency": cmd_latency,
        "_latency_one": cmd_latency_one,
        "suite": cmd_suite,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
