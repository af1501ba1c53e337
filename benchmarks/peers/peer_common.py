"""Shared helpers for the peer-optimiser runners (BayBE, Ax).

This module is imported by ``baybe_runner.py`` and ``ax_runner.py``, which run in
their own virtual environments (``.peers/baybe``, ``.peers/ax``). It must therefore
depend on the standard library only at import time; numpy/torch are imported lazily
*after* the thread-count environment variables have been set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "simulators" / "data"
DIRECT_ARYLATION_CSV = DATA_DIR / "direct_arylation" / "reactions.csv"
ARYL_AMINATION_CSV = DATA_DIR / "aryl_amination" / "reactions.csv"

HARTMANN6_MIN = -3.32237

# Default wall-clock limit for ONE timed fit+recommend call in `latency`.
LATENCY_CALL_TIMEOUT_S = 600.0
# Extra time allowed per latency child for process start, imports, warm-up and
# loading the n observations into the peer (not part of the timed call).
LATENCY_SETUP_SLACK_S = 300.0


# --------------------------------------------------------------------------- threads
def set_thread_env(n: int) -> None:
    """Pin BLAS/OpenMP thread pools; call BEFORE importing numpy/torch."""
    for var in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    ):
        os.environ[var] = str(n)


def set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # can only be set once, before any parallel work
        torch.set_num_interop_threads(n)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- problems
def hartmann6(X: Any) -> Any:
    """Hartmann-6 on [0,1]^6 (minimise; global minimum -3.32237). X: (n, 6)."""
    import numpy as np

    alpha = np.array([1.0, 1.2, 3.0, 3.2])
    A = np.array(
        [
            [10, 3, 17, 3.5, 1.7, 8],
            [0.05, 10, 17, 0.1, 8, 14],
            [3, 3.5, 1.7, 10, 17, 8],
            [17, 8, 0.05, 10, 0.1, 14],
        ],
        dtype=float,
    )
    P = 1e-4 * np.array(
        [
            [1312, 1696, 5569, 124, 8283, 5886],
            [2329, 4135, 8307, 3736, 1004, 9991],
            [2348, 1451, 3522, 2883, 3047, 6650],
            [4047, 8828, 8732, 5743, 1091, 381],
        ],
        dtype=float,
    )
    X = np.atleast_2d(np.asarray(X, dtype=float))
    inner = ((X[:, None, :] - P[None, :, :]) ** 2 * A[None, :, :]).sum(-1)
    return -(alpha[None, :] * np.exp(-inner)).sum(-1)


def latency_points(n: int, seed: int) -> Any:
    """The n existing observations for `latency` (exact recipe shared with peirce)."""
    import numpy as np

    rng = np.random.default_rng(seed + n)
    X = rng.random((n, 6))
    return X, hartmann6(X)


# --------------------------------------------------------------------------- CLI
def parse_seeds(spec: str) -> list[int]:
    """'0-19' -> 0..19 ; '0,3,5' ; '7' ; '0-4,10'."""
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            seeds.extend(range(int(a), int(b) + 1))
        else:
            seeds.append(int(part))
    return seeds


def build_parser(peer: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{peer}_runner.py", description=f"{peer} peer benchmark runner")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", required=True, help="output JSON file")
        sp.add_argument("--threads", type=int, default=2, help="torch/BLAS threads (default 2)")

    for name, exp_default in (("direct_arylation", 50), ("aryl_amination", 100)):
        sp = sub.add_parser(name, help=f"closed loop on the {name} lookup table")
        sp.add_argument("--seeds", default="0-19" if name == "direct_arylation" else "0-9")
        sp.add_argument("--batch-size", type=int, default=5)
        sp.add_argument("--experiments", type=int, default=exp_default)
        common(sp)

    sp = sub.add_parser("hartmann6", help="closed loop on Hartmann-6, batches of q")
    sp.add_argument("--seeds", default="0-9")
    sp.add_argument("--batches", type=int, default=30)
    sp.add_argument("--batch-size", type=int, default=5)
    common(sp)

    sp = sub.add_parser("latency", help="time one fit+recommend call with n existing points")
    sp.add_argument("--n-obs", type=int, nargs="+", default=[100, 300, 1000])
    sp.add_argument("--batch", type=int, nargs="+", default=[4, 16])
    sp.add_argument("--repeats", type=int, default=2)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument(
        "--call-timeout",
        type=float,
        default=LATENCY_CALL_TIMEOUT_S,
        help="seconds allowed for one timed call before it is recorded as null",
    )
    common(sp)

    sp = sub.add_parser("suite", help="closed loops on the planner suite's problems (benchmarks/suite_problems.py)")
    sp.add_argument("--problems", required=True, help="comma-separated problem names")
    sp.add_argument("--seeds", default="0-9")
    sp.add_argument("--max-experiments", type=int, default=None, help="cap on each problem's budget (smoke runs)")
    common(sp)

    # internal: one timed latency call in a fresh process (used by `latency`)
    sp = sub.add_parser("_latency_one")
    sp.add_argument("--n", type=int, required=True)
    sp.add_argument("--b", type=int, required=True)
    sp.add_argument("--seed", type=int, required=True)
    common(sp)
    return p


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_json(path: str | Path, obj: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def base_result(peer: str, version: str, cmd: str, args: argparse.Namespace, config: dict) -> dict:
    import platform

    argd = {k: v for k, v in vars(args).items() if k not in ("out",)}
    return {
        "peer": peer,
        "version": version,
        "benchmark": cmd,
        "args": argd,
        "config": config,
        "host": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def run_seeds(
    result: dict,
    out: str,
    seeds: list[int],
    one_seed: Callable[[int], dict],
    label: str,
) -> dict:
    """Run `one_seed(seed) -> {"trace": [...], **extra}` for each seed, writing
    partial JSON after every seed (``complete`` false until all are done)."""
    result["traces"] = {}
    result["wall_s"] = {}
    result["extra"] = {}
    result["complete"] = False
    for s in seeds:
        t0 = time.perf_counter()
        r = one_seed(s)
        wall = time.perf_counter() - t0
        trace = r.pop("trace")
        result["traces"][str(s)] = trace
        result["wall_s"][str(s)] = round(wall, 3)
        if r:
            result["extra"][str(s)] = r
        write_json(out, result)
        log(f"[{result['peer']} {label}] seed {s}: n={len(trace)} best={_best(trace, label):.4g} wall={wall:.1f}s")
    result["complete"] = True
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(out, result)
    return result


def _best(trace: list[float], label: str) -> float:
    return min(trace) if label.startswith("hartmann") else max(trace)


# --------------------------------------------------------------------------- latency
def run_latency(result: dict, args: argparse.Namespace, script: str) -> dict:
    """Each (n, b, repeat) runs in a fresh child process (`_latency_one`) under a
    wall-clock timeout; the child reports only the timed fit+recommend call."""
    rows = []
    result["rows"] = rows
    result["complete"] = False
    timed_out: list[tuple[int, int]] = []  # (n, b) pairs that hit the timeout
    for n in args.n_obs:
        for b in args.batch:
            secs: list[float | None] = []
            best_vals: list[float] = []
            notes: list[str] = []
            loads: list[float] = []
            extra: dict = {}
            dominated = [(n0, b0) for (n0, b0) in timed_out if n0 <= n and b0 <= b]
            if dominated:
                n0, b0 = dominated[0]
                rows.append(
                    {
                        "n_obs": n,
                        "batch": b,
                        "seconds": None,
                        "best_value": None,
                        "regret": None,
                        "note": f"skipped: the smaller case n={n0}, b={b0} already exceeded the "
                        f"{args.call_timeout:.0f}s call timeout",
                    }
                )
                log(f"[latency] n={n} b={b}: skipped (dominated by timed-out n={n0} b={b0})")
                write_json(args.out, result)
                continue
            for rep in range(args.repeats):
                if rep > 0 and secs and secs[-1] is None and notes and "killed" in notes[-1]:
                    notes.append(f"repeat {rep}: skipped after timeout")
                    break
                loads.append(round(os.getloadavg()[0], 2))
                with tempfile.TemporaryDirectory() as td:
                    child_out = Path(td) / "one.json"
                    cmd = [
                        sys.executable,
                        script,
                        "_latency_one",
                        "--n",
                        str(n),
                        "--b",
                        str(b),
                        "--seed",
                        str(args.seed),
                        "--threads",
                        str(args.threads),
                        "--out",
                        str(child_out),
                    ]
                    limit = args.call_timeout + LATENCY_SETUP_SLACK_S
                    t0 = time.perf_counter()
                    try:
                        proc = subprocess.run(cmd, timeout=limit, capture_output=True, text=True)
                    except subprocess.TimeoutExpired:
                        secs.append(None)
                        notes.append(
                            f"repeat {rep}: killed after {limit:.0f}s wall (call timeout {args.call_timeout:.0f}s)"
                        )
                        log(f"[latency] n={n} b={b} rep={rep}: TIMEOUT")
                        continue
                    total = time.perf_counter() - t0
                    if proc.returncode != 0 or not child_out.exists():
                        secs.append(None)
                        notes.append(f"repeat {rep}: child failed rc={proc.returncode}: {proc.stderr[-800:]}")
                        log(f"[latency] n={n} b={b} rep={rep}: FAILED rc={proc.returncode}\n{proc.stderr[-2000:]}")
                        continue
                    one = json.loads(child_out.read_text())
                    if one["seconds"] > args.call_timeout:
                        notes.append(f"repeat {rep}: call took {one['seconds']:.0f}s > call timeout")
                        timed_out.append((n, b))
                    secs.append(round(one["seconds"], 4))
                    best_vals.append(one["best_value"])
                    extra = {k: v for k, v in one.items() if k not in ("seconds", "best_value")}
                    log(
                        f"[latency] n={n} b={b} rep={rep}: {one['seconds']:.2f}s "
                        f"best={one['best_value']:.4f} (child wall {total:.0f}s)"
                    )
            row: dict = {"n_obs": n, "batch": b}
            if all(s is None for s in secs):
                row["seconds"] = None
            else:
                row["seconds"] = secs
            if best_vals:
                row["best_value"] = best_vals[0]  # same seed each repeat -> normally identical
                row["best_values_per_repeat"] = best_vals
                row["regret"] = row["best_value"] - HARTMANN6_MIN
            else:
                row["best_value"] = None
                row["regret"] = None
            row["loadavg_1m_before"] = loads  # machine load before each repeat (noise indicator)
            if notes:
                row["note"] = "; ".join(notes)
            row.update(extra)
            rows.append(row)
            write_json(args.out, result)
    result["complete"] = True
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(args.out, result)
    return result


# --------------------------------------------------------------------------- planner suite
def suite_problems() -> Any:
    """benchmarks/suite_problems.py: the suite's problem definitions (numpy, pandas, BoTorch; nothing of peirce's)."""
    folder = str(REPO_ROOT / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import suite_problems as module

    return module


def run_suite(result: dict, args: argparse.Namespace, prepare: Callable[[Any], tuple[dict, Callable]]) -> dict:
    """For each problem: `prepare(problem) -> (config, one)`; then `one(seed, budget) -> {"experiments": [...],
    "decision_s": [...], ...}` per seed. Each experiment is the problem's outcome (`Problem.evaluate`) plus "x" (the
    point run) and "pred" ({objective: [mean, sd]} recorded when it was proposed, or null). The JSON is rewritten
    after every seed (``complete`` false until the last)."""
    sp = suite_problems()
    seeds = parse_seeds(args.seeds)
    result["config"] = {}
    result["results"] = {}
    result["complete"] = False
    for name in [n.strip() for n in args.problems.split(",") if n.strip()]:
        problem = sp.get(name)
        budget = problem.experiments if args.max_experiments is None else min(problem.experiments, args.max_experiments)
        t0 = time.perf_counter()
        config, one = prepare(problem)
        config["prepare_s"] = round(time.perf_counter() - t0, 2)
        result["config"][name] = config
        result["results"][name] = {}
        for seed in seeds:
            seed_everything(seed)
            t0 = time.perf_counter()
            run = one(seed, budget)
            run["wall_s"] = round(time.perf_counter() - t0, 3)
            result["results"][name][str(seed)] = run
            write_json(args.out, result)
            scores = sp.score(problem, run["experiments"], budget)
            log(f"[{result['peer']} suite] {name} seed {seed}: n={len(run['experiments'])} "
                f"{sp.metric_name(problem)}={scores:.4g} wall={run['wall_s']:.1f}s")  # fmt: skip
    result["complete"] = True
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(args.out, result)
    return result


def plain(value: Any) -> Any:
    """numpy scalars as Python numbers (JSON, dictionary keys)."""
    if hasattr(value, "item") and not isinstance(value, str):
        return value.item()
    return value


@contextlib.contextmanager
def rng_preserved():
    """Leave Python's, numpy's and torch's global random states as they were: a side call (a prediction for the
    calibration table) must not change the optimiser's later draws."""
    import numpy as np
    import torch

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
