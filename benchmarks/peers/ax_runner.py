"""Ax peer runner — run with .peers/ax/bin/python (see README.md).

Uses the modern Ax API (``ax.api.client.Client``, Ax >= 1.0) with its default
generation strategy (``configure_generation_strategy()`` -> method="fast":
center point + Sobol initialisation, then the "MBM" BoTorch node).

Subcommands: hartmann6, latency, direct_arylation, suite. Each writes one JSON (--out).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc

PEER = "ax"
XCOLS = [f"x{i}" for i in range(1, 7)]
SUBSTANCES_DA = ["Solvent", "Base", "Ligand"]


def _imports(threads: int) -> None:
    pc.set_torch_threads(threads)
    warnings.filterwarnings("ignore")
    from ax.utils.common.logger import set_ax_logger_levels

    set_ax_logger_levels(logging.ERROR)
    logging.getLogger("ax").setLevel(logging.ERROR)


def _version() -> str:
    import ax

    return ax.__version__


def _node_of(client, idx: int) -> str:
    gr = client._experiment.trials[idx].generator_runs[0]
    return str(getattr(gr, "_generation_node_name", None))


def _gs_config(client) -> dict:
    gs = client._generation_strategy
    cfg = {"generation_strategy": gs.name, "nodes": []}
    for node in gs._nodes:
        specs = []
        for s in node.generator_specs:
            kw = {k: repr(v) for k, v in (s.generator_kwargs or {}).items()}
            specs.append(
                {
                    "generator": str(
                        s.generator_enum.value if hasattr(s.generator_enum, "value") else s.generator_enum
                    ),
                    "kwargs": kw,
                }
            )
        cfg["nodes"].append({"name": node.name, "generators": specs})
    return cfg


def _new_client(seed: int, params, objective: str, mbm_only: bool = False):
    from ax.api.client import Client

    client = Client(random_seed=seed)
    client.configure_experiment(parameters=params)
    client.configure_optimization(objective=objective)
    if mbm_only:
        # Same default ("fast") MBM BoTorch node, but with no center/Sobol nodes in
        # front of it, so every generated trial comes from BoTorch.
        client.configure_generation_strategy(
            initialization_budget=0, initialize_with_center=False, initialization_random_seed=seed
        )
    else:
        # Ax's default generation strategy; only the Sobol seed is set for reproducibility.
        client.configure_generation_strategy(initialization_random_seed=seed)
    return client


def _hartmann_params():
    from ax.api.configs import RangeParameterConfig

    return [RangeParameterConfig(name=c, bounds=(0.0, 1.0), parameter_type="float") for c in XCOLS]


def _ask_batch(client, q: int) -> dict:
    """Collect q pending trials (Ax's center node may return fewer than asked in one call)."""
    pending: dict = {}
    tries = 0
    while len(pending) < q:
        got = client.get_next_trials(max_trials=q - len(pending))
        pending.update(got)
        tries += 1
        if not got or tries > 3 * q:
            break
    return pending


# --------------------------------------------------------------------------- Hartmann-6
def cmd_hartmann6(args) -> None:
    import numpy as np

    pc.seed_everything(0)
    cfg_client = _new_client(0, _hartmann_params(), "-f")
    config = {
        "problem": "Hartmann-6 on [0,1]^6, minimise, noiseless",
        "api": "ax.api.client.Client: configure_experiment(6 x RangeParameterConfig float [0,1]), "
        "configure_optimization('-f'), configure_generation_strategy(initialization_random_seed=seed)",
        "batching": "each batch: get_next_trials(max_trials=q) (repeated until q trials are pending), "
        "then evaluate and complete_trial all q",
        **_gs_config(cfg_client),
    }
    result = pc.base_result(PEER, _version(), "hartmann6", args, config)

    def one(seed: int) -> dict:
        pc.seed_everything(seed)
        client = _new_client(seed, _hartmann_params(), "-f")
        trace: list[float] = []
        nodes: list[str] = []
        ask_s = []
        for _ in range(args.batches):
            t0 = time.perf_counter()
            trials = _ask_batch(client, args.batch_size)
            ask_s.append(time.perf_counter() - t0)
            for idx, p in trials.items():
                f = float(pc.hartmann6(np.array([[p[c] for c in XCOLS]]))[0])
                client.complete_trial(trial_index=idx, raw_data={"f": f})
                trace.append(f)
                nodes.append(_node_of(client, idx))
        return {"trace": trace, "nodes": nodes, "recommend_s": [round(t, 3) for t in ask_s]}

    pc.run_seeds(result, args.out, pc.parse_seeds(args.seeds), one, "hartmann6")


# --------------------------------------------------------------------------- direct arylation
def cmd_direct_arylation(args) -> None:
    import pandas as pd
    from ax.api.configs import ChoiceParameterConfig

    data = pd.read_csv(pc.DIRECT_ARYLATION_CSV)
    params = [
        ChoiceParameterConfig(name=s, values=sorted(data[s].unique().tolist()), parameter_type="str", is_ordered=False)
        for s in SUBSTANCES_DA
    ] + [
        ChoiceParameterConfig(
            name="Concentration",
            values=sorted(float(v) for v in data["Concentration"].unique()),
            parameter_type="float",
            is_ordered=True,
        ),
        ChoiceParameterConfig(
            name="Temp_C",
            values=sorted(float(v) for v in data["Temp_C"].unique()),
            parameter_type="float",
            is_ordered=True,
        ),
    ]
    key_cols = [*SUBSTANCES_DA, "Concentration", "Temp_C"]

    def key_of(p):
        return tuple(p[c] if c in SUBSTANCES_DA else round(float(p[c]), 6) for c in key_cols)

    lookup = {key_of(r): float(r["yield"]) for _, r in data.iterrows()}
    assert len(lookup) == len(data)

    pc.seed_everything(0)
    config = {
        "problem": "direct_arylation (Shields et al. 2021), 1728 candidates (full grid), maximise yield",
        "api": "ax.api.client.Client with ChoiceParameterConfig: Solvent/Base/Ligand unordered str "
        "(one-hot, no chemical descriptors), Concentration/Temp_C ordered float; objective 'yield_pct' "
        "(metric renamed: 'yield' is a Python keyword that Ax's sympy objective parser rejects)",
        "batching": "get_next_trials(max_trials=q) until q pending, then complete all",
        "no_repeats": "relies on Ax's GenerationNode deduplication (repeats counted in extra.repeats)",
        **_gs_config(_new_client(0, params, "yield_pct")),
    }
    result = pc.base_result(PEER, _version(), "direct_arylation", args, config)

    def one(seed: int) -> dict:
        pc.seed_everything(seed)
        client = _new_client(seed, params, "yield_pct")
        trace: list[float] = []
        nodes: list[str] = []
        seen: set = set()
        repeats = 0
        ask_s = []
        while len(trace) < args.experiments:
            q = min(args.batch_size, args.experiments - len(trace))
            t0 = time.perf_counter()
            trials = _ask_batch(client, q)
            ask_s.append(time.perf_counter() - t0)
            if not trials:
                break
            for idx, p in trials.items():
                k = key_of(p)
                repeats += k in seen
                seen.add(k)
                y = lookup[k]
                client.complete_trial(trial_index=idx, raw_data={"yield_pct": y})
                trace.append(y)
                nodes.append(_node_of(client, idx))
        return {"trace": trace, "repeats": repeats, "nodes": nodes, "recommend_s": [round(t, 3) for t in ask_s]}

    pc.run_seeds(result, args.out, pc.parse_seeds(args.seeds), one, "direct_arylation")


def cmd_aryl_amination(args) -> None:
    raise SystemExit("aryl_amination is not implemented for Ax (BayBE only; see README.md)")


# --------------------------------------------------------------------------- planner suite
def _metric(name: str) -> str:
    # Ax's objective parser (sympy) rejects Python keywords ('yield') and sympy's own names ('product').
    return f"obj_{name}"


def _suite_prepare(problem) -> tuple[dict, object]:
    """Ax on one suite problem, with its default generation strategy (as `hartmann6`). Inputs: continuous ->
    RangeParameterConfig (a pool's numeric columns over the pool's span), discrete -> ordered float
    ChoiceParameterConfig, categories and molecules -> unordered str ChoiceParameterConfig (Ax has no chemical
    descriptors). Pools: Ax cannot be restricted to a list of rows, so each trial it generates is moved to the
    nearest candidate not yet run nor chosen (distance: squared differences of numeric inputs scaled to [0, 1],
    plus 1 per differing category); when that differs from Ax's point, the generated trial is marked abandoned and
    the candidate attached as a trial and completed. Several objectives: `configure_optimization("-a, -b")` with
    the reference point as objective thresholds. Constraints: Ax's outcome constraints `c <= 0`, given the
    constraint values (and the objective) of every trial (Ax's native black-box constraints)."""
    import numpy as np
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

    params = []
    for p in problem.parameters:
        if p.kind == "continuous":
            params.append(RangeParameterConfig(name=p.name, bounds=tuple(map(float, p.bounds)), parameter_type="float"))
        elif p.kind == "discrete":
            params.append(
                ChoiceParameterConfig(name=p.name, values=[float(v) for v in p.values], parameter_type="float",
                                      is_ordered=True)
            )  # fmt: skip
        else:
            values = list(p.smiles) if p.kind == "molecule" else [str(v) for v in p.values]
            params.append(ChoiceParameterConfig(name=p.name, values=values, parameter_type="str", is_ordered=False))
    objective = ", ".join(("" if o.direction == "maximize" else "-") + _metric(o.name) for o in problem.objectives)
    constraints = [f"{_metric(o.name)} {'>=' if o.direction == 'maximize' else '<='} {o.reference}"
                   for o in problem.objectives if o.reference is not None]  # fmt: skip
    constraints += [f"{c} <= 0" for c in problem.constraints]

    def new_client(seed: int):
        from ax.api.client import Client

        client = Client(random_seed=seed)
        client.configure_experiment(parameters=params)
        client.configure_optimization(objective=objective, outcome_constraints=constraints or None)
        client.configure_generation_strategy(initialization_random_seed=seed)
        return client

    names = problem.names
    numeric = [p.name for p in problem.parameters if p.kind in ("continuous", "discrete")]
    other = [p.name for p in problem.parameters if p.kind not in ("continuous", "discrete")]
    if problem.kind == "pool":
        candidates = problem.candidates()
        num = np.array([[float(c[n]) for n in numeric] for c in candidates]).reshape(len(candidates), len(numeric))
        low, span = num.min(axis=0), np.maximum(num.max(axis=0) - num.min(axis=0), 1e-12)
        num = (num - low) / span
        cat = np.array([[c[n] for n in other] for c in candidates], dtype=object).reshape(len(candidates), len(other))

    def nearest(point: dict, taken: set) -> int:
        d = np.zeros(len(candidates))
        if numeric:
            x = (np.array([float(point[n]) for n in numeric]) - low) / span
            d += ((num - x) ** 2).sum(axis=1)
        if other:
            d += (cat != np.array([point[n] for n in other], dtype=object)).sum(axis=1)
        d[list(taken)] = np.inf
        return int(np.argmin(d))

    config = {
        "api": "ax.api.client.Client, configure_generation_strategy(initialization_random_seed=seed)",
        "objective": objective,
        "outcome_constraints": constraints,
        "pool": "trials moved to the nearest unused candidate (abandon + attach_trial)"
        if problem.kind == "pool"
        else None,
        "predictions": "Client.predict(points) before completing (not timed; none while Ax has no model)",
        **_gs_config(new_client(0)),
    }

    def one(seed: int, budget: int) -> dict:
        client = new_client(seed)
        experiments: list[dict] = []
        decision_s: list[float] = []
        predict_s: list[float] = []
        nodes: list[str] = []
        moved = 0
        taken: set = set()
        while len(experiments) < budget:
            q = min(problem.batch_size, budget - len(experiments))
            t0 = time.perf_counter()
            trials = _ask_batch(client, q)
            decision_s.append(round(time.perf_counter() - t0, 4))
            if not trials:
                break
            chosen = []
            for idx, p in trials.items():
                nodes.append(_node_of(client, idx))
                point = {n: p[n] for n in names}
                if problem.kind == "pool":
                    row = nearest(point, taken)
                    taken.add(row)
                    if pc.suite_problems().key(candidates[row], names) != pc.suite_problems().key(point, names):
                        moved += 1
                        client.mark_trial_abandoned(trial_index=idx)
                        point = {n: float(v) if n in numeric else v for n, v in candidates[row].items()}
                        idx = client.attach_trial(parameters=point)
                chosen.append((idx, point))
            t0 = time.perf_counter()
            try:
                with pc.rng_preserved():
                    predicted = client.predict([pt for _, pt in chosen])
                preds = [
                    {o.name: list(map(float, pr[_metric(o.name)])) for o in problem.objectives} for pr in predicted
                ]
            except Exception:  # no model yet (center and Sobol trials), or a failed fit: no predictions
                preds = [None] * len(chosen)
            predict_s.append(round(time.perf_counter() - t0, 4))
            for (idx, point), pred in zip(chosen, preds, strict=True):
                outcome = problem.evaluate(point, seed, len(experiments))
                raw = {_metric(k): v for k, v in outcome["observed"].items()}
                raw.update(outcome["constraints"])
                client.complete_trial(trial_index=idx, raw_data=raw)
                experiments.append({"x": point, "pred": pred, **outcome})
        return {"experiments": experiments, "decision_s": decision_s, "predict_s": predict_s, "nodes": nodes,
                "moved_to_candidate": moved}  # fmt: skip

    return config, one


def cmd_suite(args) -> None:
    result = pc.base_result(PEER, _version(), "suite", args, {})
    pc.run_suite(result, args, _suite_prepare)


# --------------------------------------------------------------------------- latency
def cmd_latency(args) -> None:
    pc.seed_everything(0)
    config = {
        "problem": "Hartmann-6; n uniform points rng=np.random.default_rng(seed+n), then ONE timed call",
        "timed_call": "Client.get_next_trials(max_trials=b) after attach_trial+complete_trial of the n points; "
        "generation strategy: configure_generation_strategy(initialization_budget=0, "
        "initialize_with_center=False) -> 'MBM:fast', i.e. Ax's default MBM BoTorch node alone "
        "(with the plain default, Ax still emitted some Sobol trials after 100 attached points); "
        "node asserted per trial. "
        "Ax generates the b trials one after another (b gen calls with pending points), not jointly.",
        "process": "each (n, b, repeat) in a fresh subprocess; one untimed warm-up call on 8 points first",
        **_gs_config(_new_client(0, _hartmann_params(), "-f", mbm_only=True)),
    }
    result = pc.base_result(PEER, _version(), "latency", args, config)
    pc.run_latency(result, args, os.path.abspath(__file__))


def _client_with_points(seed: int, X, y):
    client = _new_client(seed, _hartmann_params(), "-f", mbm_only=True)
    for xi, yi in zip(X, y, strict=True):
        idx = client.attach_trial(parameters={c: float(v) for c, v in zip(XCOLS, xi, strict=True)})
        client.complete_trial(trial_index=idx, raw_data={"f": float(yi)})
    return client


def cmd_latency_one(args) -> None:
    import numpy as np

    # untimed warm-up on a tiny problem
    pc.seed_everything(12345)
    Xw = np.random.default_rng(12345).random((8, 6))
    cw = _client_with_points(12345, Xw, pc.hartmann6(Xw))
    cw.get_next_trials(max_trials=1)

    X, y = pc.latency_points(args.n, args.seed)
    pc.seed_everything(args.seed)
    client = _client_with_points(args.seed, X, y)
    t0 = time.perf_counter()
    trials = client.get_next_trials(max_trials=args.b)
    secs = time.perf_counter() - t0
    nodes = sorted({_node_of(client, i) for i in trials})
    if nodes != ["MBM"]:
        raise SystemExit(f"expected only MBM trials, got nodes {nodes}")
    vals = pc.hartmann6(np.array([[p[c] for c in XCOLS] for p in trials.values()]))
    pc.write_json(
        args.out,
        {"seconds": secs, "best_value": float(vals.min()), "n_returned": len(trials), "nodes": nodes},
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
