"""How much of a campaign's time is orchestration (Prefect + database) rather than the science?

Runs the Hartmann-6 random-planner example (50 experiments, batches of 5) three ways in one run:
  - `peirce run` as a subprocess with the Prefect engine (what a scientist types; includes interpreter start),
  - the Prefect flow in this process,
  - the same loop with plain function calls (the inline engine), the peer that isolates Prefect's share.
Simulator and planner time are measured inside the run (timed lab calls; the decisions' recorded wall time);
orchestration is the rest. Prints a table; asserts nothing.

    python benchmarks/orchestration_overhead.py [--experiments 50] [--batch 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.campaign import runs  # noqa: E402
from orchestrator.campaign.spec import parse_spec  # noqa: E402
from orchestrator.cli.campaigns import quiet_prefect as _quiet_prefect  # noqa: E402
from orchestrator.cycle.context import load_context, open_campaign  # noqa: E402
from orchestrator.cycle.loop import InlineStages, run_loop  # noqa: E402
from orchestrator.lab.build import build_lab  # noqa: E402
from orchestrator.lab.contract import Lab  # noqa: E402
from orchestrator.store.database import open_database  # noqa: E402
from orchestrator.store.models import Decision, Experiment  # noqa: E402


class TimedLab:
    """A lab that times the lab it wraps (the rest of a campaign's wall time is the orchestrator's)."""

    def __init__(self, inner: Lab) -> None:
        self.inner, self.seconds = inner, 0.0
        self.max_concurrency, self.candidates = inner.max_concurrency, inner.candidates

    def run(self, parameters, key, journal=None):
        started = time.perf_counter()
        try:
            return self.inner.run(parameters, key, journal)
        finally:
            self.seconds += time.perf_counter() - started

    def close(self) -> None:
        self.inner.close()


def spec_text(experiments: int, batch: int) -> str:
    data = yaml.safe_load((REPO / "examples" / "hartmann6_random.yaml").read_text())
    data["budget"] = {"experiments": experiments, "batch_size": batch}
    return yaml.safe_dump(data, sort_keys=False)


def in_process(engine: str, text: str, folder: Path) -> dict[str, float]:
    url = f"sqlite:///{folder / f'{engine}.db'}"
    started = time.perf_counter()
    db = open_database(url)
    spec = parse_spec(text, REPO / "examples")
    campaign_id, _ = open_campaign(db, spec, text)
    runs.claim(db, campaign_id)
    lab = TimedLab(build_lab(spec))
    ctx = load_context(db, campaign_id, lab=lab)
    if engine == "inline":
        run_loop(ctx, InlineStages(ctx))
    else:
        from orchestrator.cycle import flow

        # The flow builds its own context from the campaign id; hand it the timed lab through the name it calls.
        original = flow.load_context

        def timed_context(db_, campaign_id_):
            return original(db_, campaign_id_, lab=lab)

        flow.load_context = timed_context
        try:
            flow.run_with_prefect(url, campaign_id, spec.name, ctx.lab.max_concurrency)
        finally:
            flow.load_context = original
    total = time.perf_counter() - started
    with db.session() as session:
        planner = session.scalar(select(func.sum(Decision.wall_time_s))) or 0.0
        done = session.scalar(select(func.count()).where(Experiment.state == "completed"))
    return {"total": total, "simulator": lab.seconds, "planner": planner, "completed": done}


def empty_flow() -> float:
    """A Prefect flow with one trivial task, run last: the per-flow cost once the temporary server is up."""
    from prefect import flow, task

    @task(persist_result=False)
    def nothing() -> int:
        return 0

    @flow(name="peirce-empty")
    def empty() -> int:
        return nothing()

    started = time.perf_counter()
    empty()
    return time.perf_counter() - started


def subprocess_cli(text: str, folder: Path) -> float:
    path = folder / "cli.yaml"
    path.write_text(text)
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).with_name("peirce")), "run", str(path), "--db", f"sqlite:///{folder / 'cli.db'}"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=50)
    parser.add_argument("--batch", type=int, default=5)
    args = parser.parse_args()
    _quiet_prefect()
    text = spec_text(args.experiments, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cli_seconds = subprocess_cli(text, folder)
        prefect = in_process("prefect", text, folder)
        inline = in_process("inline", text, folder)
        fixed = empty_flow()
    print(f"Hartmann-6, random planner, {args.experiments} experiments in batches of {args.batch}, SQLite file\n")
    print("| run | total s | simulator s | planner s | orchestration s | orchestration share |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in (("Prefect flow, in process", prefect), ("inline (plain functions)", inline)):
        orchestration = r["total"] - r["simulator"] - r["planner"]
        print(
            f"| {name} | {r['total']:.2f} | {r['simulator']:.3f} | {r['planner']:.3f} | {orchestration:.2f} "
            f"| {orchestration / r['total']:.1%} |"
        )
    print(f"| `peirce run` subprocess (Prefect, incl. start-up) | {cli_seconds:.2f} | | | | |")
    print(f"| empty Prefect flow, one trivial task, run after the others (server already up) | {fixed:.2f} | | | | |")
    print(
        f"\nPrefect / inline total time: {prefect['total'] / inline['total']:.1f}x; "
        f"per experiment: Prefect {prefect['total'] / args.experiments * 1000:.0f} ms, "
        f"inline {inline['total'] / args.experiments * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
