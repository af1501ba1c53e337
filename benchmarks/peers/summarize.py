"""Summarise peer JSON results (stdlib only; any Python >= 3.11).

python benchmarks/peers/summarize.py benchmarks/out/peers/*.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HARTMANN6_MIN = -3.32237


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _best_so_far(trace: list[float], k: int, maximise: bool) -> float:
    head = trace[:k]
    return max(head) if maximise else min(head)


def summarize_table(d: dict, checkpoints: list[int], hit: float) -> list[str]:
    traces = list(d["traces"].values())
    out = [f"  seeds done: {len(traces)} (complete={d.get('complete')})"]
    for k in checkpoints:
        if not traces or len(traces[0]) < k:
            continue
        bests = [_best_so_far(t, k, True) for t in traces]
        share = sum(b >= hit for b in bests) / len(bests)
        out.append(
            f"  after {k:>3} experiments: mean best {_mean(bests):6.2f}   share of seeds >= {hit:g}: {share:.2f}"
        )
    walls = list(d.get("wall_s", {}).values())
    if walls:
        out.append(f"  mean wall per seed: {_mean(walls):.0f} s")
    return out


def summarize_hartmann(d: dict, q: int) -> list[str]:
    traces = list(d["traces"].values())
    out = [f"  seeds done: {len(traces)} (complete={d.get('complete')})"]
    n = min((len(t) for t in traces), default=0)
    for nb in (5, 10, 20, 30):
        k = nb * q
        if k > n:
            continue
        regrets = [_best_so_far(t, k, False) - HARTMANN6_MIN for t in traces]
        logs = [math.log10(max(r, 1e-12)) for r in regrets]
        out.append(
            f"  after {nb:>2} batches ({k:>3} evals): mean log10 regret {_mean(logs):6.2f}   "
            f"mean regret {_mean(regrets):.4f}"
        )
    walls = list(d.get("wall_s", {}).values())
    if walls:
        out.append(f"  mean wall per seed: {_mean(walls):.0f} s")
    return out


def summarize_latency(d: dict) -> list[str]:
    out = ["     n    b   seconds per repeat         best f     regret   note"]
    for r in d.get("rows", []):
        secs = r.get("seconds")
        s = "null" if secs is None else ", ".join("null" if x is None else f"{x:.1f}" for x in secs)
        bv = r.get("best_value")
        rg = r.get("regret")
        out.append(
            f"  {r['n_obs']:>4} {r['batch']:>4}   {s:<24} "
            f"{'' if bv is None else f'{bv:8.4f}':>8} {'' if rg is None else f'{rg:8.4f}':>9}   "
            f"{r.get('note', '')[:90]}"
        )
    return out


def main(paths: list[str]) -> None:
    for p in paths:
        try:
            d = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"{p}: unreadable ({e})")
            continue
        bench = d.get("benchmark")
        print(f"{p}: {d.get('peer')} {d.get('version')} {bench}")
        if bench == "direct_arylation":
            lines = summarize_table(d, [5, 10, 20, 30, 50], 99.0)
        elif bench == "aryl_amination":
            lines = summarize_table(d, [5, 10, 20, 30, 50, 100], 95.0)
        elif bench == "hartmann6":
            lines = summarize_hartmann(d, int(d.get("args", {}).get("batch_size", 5)))
        elif bench == "latency":
            lines = summarize_latency(d)
        else:
            lines = ["  (unknown benchmark)"]
        print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
